"""Procedural synthetic building photos in the Street View dataset's file format."""

from geotriplet_assets.synth.cities import DEFAULT_CITIES, CitySpec
from geotriplet_assets.synth.config import SynthConfig
from geotriplet_assets.synth.generator import SynthSummary, generate_city

__all__ = ["DEFAULT_CITIES", "CitySpec", "SynthConfig", "SynthSummary", "generate_city"]
