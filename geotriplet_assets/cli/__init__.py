"""The `geotriplet` console script (`main`): one module per subcommand, imported only when
that subcommand runs, so that `geotriplet --help` or `synth` loads neither Dagster nor torch."""
