"""GeoTriplet: learn and search building-image similarity (docs/architecture.md)."""
