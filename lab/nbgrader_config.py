# The learner's nbgrader configuration, for `make lab` and Binder (JUPYTER_CONFIG_PATH points here).
# A learner only validates: the Validate button runs the notebook and reports failing test cells.
# The instructor's course configuration is autograde/nbgrader_config.py.
c = get_config()  # noqa: F821

# The exercises train small models: allow a slow cell as long as autograding does (120 s).
c.Execute.timeout = 120
