"""Only what pyproject.toml cannot say: config/ ships inside the wheel as the package `framesieve_config`
(found through importlib.resources by models/shipped.py), next to the project's own packages."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["contracts*", "costing*", "models*", "edge_agent*", "cloud*", "landed*"]),
              "framesieve_config"],
    package_dir={"framesieve_config": "config"},
    package_data={"models": ["zoo/**/*.onnx", "zoo/**/*.json"], "framesieve_config": ["*.yaml"],
                  # the dashboard's pages and its vendored chart library, served by `framesieve-cloud api`
                  "cloud.dashboard": ["static/*", "static/vendor/uplot/*"]},
)
