import warnings
from pathlib import Path

import pytest

from geotriplet_assets.config import (
    CACHE_DIR_ENV_VAR,
    CONFIG_ENV_VAR,
    DATA_ROOT_ENV_VAR,
    ConfigError,
    IgnoredSettingWarning,
    load_config,
    parse_config,
)

ORIGINAL_PROJECT_CONFIG = """
data:
  hdf5_path: "data/processed/dataset.h5"
  input_dir: "data/raw/images"
  batch_size: 32
  num_workers: 4
  num_difficulty_levels: 5
  ucb_alpha: 2.0
  cache_size: 1000
  feature_model: vit_pe_spatial_base_patch16_512.fb
  image_size: 512
model:
  backbone: vit_pe_spatial_base_patch16_512.fb
  embedding_size: 128
  margin: 1.0
  backbone_output_size: 768
train:
  lr: 0.0001
  max_epochs: 100
  precision: 16-mixed
  samples_per_epoch: 5000
  seed: 42
  warmup_epochs: 3
  weight_decay: 0.0001
  difficulty_update_freq: 100
logging:
  project_name: "geo-triplet-net"
  exp_name: null
  checkpoint_dir: "checkpoints"
  offline: false
optuna:
  enabled: false
  storage: "sqlite:///optuna_studies/building_triplet.db"
  study_name: "building_triplet_study"
  project_name: "geo-triplet-optuna"
  group_name: null
auto_batch_size:
  enabled: false
  mode: power
"""


def test_the_original_projects_documented_config_is_accepted() -> None:
    config = parse_config(ORIGINAL_PROJECT_CONFIG)
    assert config.data.image_size == 512
    assert config.model.backbone_output_size == 768
    assert config.train.difficulty_update_freq == 100
    assert config.optuna.storage == "sqlite:///optuna_studies/building_triplet.db"
    assert config.auto_batch_size.mode == "power"


def test_example_config_matches_the_defaults_it_documents() -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.yaml"
    assert parse_config(example.read_text(), str(example)) == parse_config("{}")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("data: {bogus: 1}", "unknown key 'data.bogus'"),
        ("surprise: {}", "unknown key 'surprise'"),
        ("train: {lr: -1}", "'train.lr'"),
        ("neighbours: {k: 0}", "'neighbours.k'"),
        ("splits: {ratios: [0.5, 0.5, 0.5]}", "ratios must sum to 1"),
        ("auto_batch_size: {mode: fastest}", "'auto_batch_size.mode'"),
        ("data: {feature_model: resnet18}", "data.feature_model ('resnet18')"),
        ("- just\n- a list", "must hold a mapping"),
        ("data: [unclosed", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_key(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=None) as raised:
        parse_config(text, "bad.yaml")
    assert named in str(raised.value)
    assert "bad.yaml" in str(raised.value)


def test_load_config_prefers_path_then_environment_then_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    assert load_config().synth.preset == "demo"
    from_env = tmp_path / "env.yaml"
    from_env.write_text("neighbours: {k: 7}\n")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(from_env))
    assert load_config().neighbours.k == 7
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("neighbours: {k: 9}\n")
    assert load_config(explicit).neighbours.k == 9
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_relative_paths_resolve_against_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(f"data: {{root: {tmp_path}, input_dir: photos}}")
    assert config.input_dir == tmp_path / "photos"
    assert config.resolve("/abs/elsewhere") == Path("/abs/elsewhere")
    monkeypatch.setenv(DATA_ROOT_ENV_VAR, str(tmp_path / "other"))
    assert config.input_dir == tmp_path / "other" / "photos"


def test_the_backbone_cache_is_shared_by_data_roots_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    one = parse_config(f"data: {{root: {tmp_path / 'one'}}}")
    two = parse_config(f"data: {{root: {tmp_path / 'two'}}}")
    assert (
        one.backbone_cache_dir == two.backbone_cache_dir == tmp_path / "xdg/geotriplet/backbones"
    )
    configured = parse_config(f"data: {{root: {tmp_path}}}\nembedding: {{cache_dir: cache}}")
    assert configured.backbone_cache_dir == tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV_VAR, str(tmp_path / "env"))
    assert configured.backbone_cache_dir == one.backbone_cache_dir == tmp_path / "env"


def test_cache_size_still_loads_but_warns_that_it_does_nothing() -> None:
    with pytest.warns(IgnoredSettingWarning, match="data.cache_size has no effect"):
        config = parse_config("data: {cache_size: 1000}")
    assert config.data.cache_size == 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_config("data: {batch_size: 8}").data.cache_size is None
