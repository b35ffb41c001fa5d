"""The GeoTriplet retrieval service: loads a search bundle and answers `POST /similar`.

Nothing here imports torch, timm, lightning or dagster: the service image installs only
`service/requirements.txt`. The public Python API for computing results exactly as the
service does is `geotriplet_assets.bundle.load.load_bundle` and `LoadedBundle.search`.
"""
