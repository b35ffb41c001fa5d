"""The backbone and decoding settings a configuration asks for (embedding and serving)."""

from __future__ import annotations

from geotriplet_assets.core.backbone import BackboneSpec
from geotriplet_assets.core.config import GeoTripletConfig
from geotriplet_assets.core.image_decode import DecodeLimits


def backbone_spec(config: GeoTripletConfig) -> BackboneSpec:
    return BackboneSpec(
        model_name=config.model.backbone,
        weights=config.model.backbone_weights,
        image_size=config.data.image_size,
        seed=config.train.seed,
    )


def decode_limits(config: GeoTripletConfig) -> DecodeLimits:
    return DecodeLimits(min_side=config.embedding.min_side, max_pixels=config.embedding.max_pixels)
