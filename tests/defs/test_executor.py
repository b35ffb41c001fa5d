from geotriplet_assets.definitions import build_definitions


def test_deployed_runs_fork_their_steps_from_a_preloaded_server() -> None:
    job = build_definitions().resolve_implicit_global_asset_job_def()
    resolved = job.executor_def.config_schema.resolve_config({})
    assert resolved.success
    assert resolved.value["config"]["start_method"] == {"forkserver": {}}
    assert job.executor_def.name == "multiprocess_forkserver"
