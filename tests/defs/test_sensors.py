from pathlib import Path

import dagster as dg
from PIL import Image

from geotriplet_assets.definitions import build_definitions
from geotriplet_assets.defs.partitions import DATASET_PARTITIONS
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.defs.sensors import dataset_partitions_sensor


def _photo(path: Path, metadata: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (120, 90, 60)).save(path.with_suffix(".jpg"))
    path.with_suffix(".txt").write_text(metadata)


def _settings(tmp_path: Path, input_dir: Path) -> GeoTripletSettings:
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{root: {tmp_path / 'data'}, input_dir: {input_dir}}}\n")
    return GeoTripletSettings(config_path=str(config))


def _evaluate(
    instance: dg.DagsterInstance, settings: GeoTripletSettings, cursor: str | None = None
) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"settings": settings}
    )
    return dataset_partitions_sensor(context)


def _added_keys(result: dg.SensorResult) -> list[str]:
    requests = result.dynamic_partitions_requests
    return [key for request in requests for key in request.partition_keys]


def test_registers_the_datasets_the_catalogue_would_find(tmp_path: Path) -> None:
    city = tmp_path / "city"
    _photo(city / "north" / "a", "d 3 1 1\nc 45.50 -73.58\n")
    _photo(city / "north" / "b", "d 3 2 1\nc 45.51 -73.57\n")
    _photo(city / "south" / "c", "d 12 1 1\nc 40.71 -74.00\n")
    # a metadata file without its image: rejected by the catalogue, so no partition 0077
    (city / "south" / "orphan.txt").write_text("d 77 1 1\nc 40.0 -80.0\n")
    settings = _settings(tmp_path, city)

    with dg.instance_for_test() as instance:
        result = _evaluate(instance, settings)
        assert isinstance(result, dg.SensorResult)
        assert _added_keys(result) == ["0003", "0012"]
        assert result.dynamic_partitions_requests[0].partitions_def_name == DATASET_PARTITIONS.name
        assert not result.run_requests

        unchanged = _evaluate(instance, settings, cursor=result.cursor)
        assert isinstance(unchanged, dg.SkipReason)

        instance.add_dynamic_partitions(DATASET_PARTITIONS.name, ["0003", "0012"])
        _photo(city / "east" / "d", "d 5 1 1\nc 48.85 2.35\n")
        grown = _evaluate(instance, settings, cursor=result.cursor)
        assert isinstance(grown, dg.SensorResult)
        assert _added_keys(grown) == ["0005"]
        assert grown.cursor != result.cursor


def test_skips_with_the_reason_while_there_is_nothing_to_register(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tmp_path / "not_yet")
    with dg.instance_for_test() as instance:
        missing = _evaluate(instance, settings)
        assert isinstance(missing, dg.SkipReason)
        assert "does not exist yet" in missing.skip_message

        (tmp_path / "not_yet").mkdir()
        (tmp_path / "not_yet" / "lonely.txt").write_text("d 1 1 1\nc 45.0 -73.0\n")
        empty = _evaluate(instance, settings)
        assert isinstance(empty, dg.SkipReason)
        assert "every image was rejected" in empty.skip_message


def test_with_a_dataset_h5_the_folder_is_not_scanned(tmp_path: Path) -> None:
    city = tmp_path / "city"
    _photo(city / "a", "d 3 1 1\nc 45.50 -73.58\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"data: {{root: {tmp_path / 'data'}, input_dir: {city}, hdf5_path: dataset.h5}}\n"
    )
    with dg.instance_for_test() as instance:
        result = _evaluate(instance, GeoTripletSettings(config_path=str(config)))
        assert isinstance(result, dg.SkipReason)
        assert "data.hdf5_path is set" in result.skip_message


def test_the_code_location_runs_the_sensor_from_the_start() -> None:
    repository = build_definitions().get_repository_def()
    sensor = repository.get_sensor_def(dataset_partitions_sensor.name)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
