"""The GeoTriplet retrieval service: loads a search bundle and answers `POST /similar`.

It uses the bundle contract `geotriplet_assets.bundle` and nothing else of the pipeline, and
never imports torch, timm, lightning or dagster: the service image installs only
`service/requirements.txt`. Computing results exactly as the service does is
`geotriplet_assets.bundle.load.load_bundle` and `LoadedBundle.search`.
"""
