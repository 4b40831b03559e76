"""The wheel's package list: ppviz's own packages (found, so moving modules needs no edit here) plus
the three that pyproject.toml's ``[tool.setuptools.package-dir]`` maps in from the top level
(``app.py`` -> ``ppviz.dashboard``, ``pages/`` -> ``ppviz.dashboard.pages``, ``pretrained/`` ->
``ppviz.pretrained``). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """``ppviz.dashboard`` is the repository root: of its modules, only ``app.py`` (not this file)."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        if package == "ppviz.dashboard":
            modules = [m for m in modules if m[1] == "app"]
        return modules


setup(packages=[*find_packages(include=["ppviz", "ppviz.*"]),
                "ppviz.dashboard", "ppviz.dashboard.pages", "ppviz.pretrained", "ppviz.assets"],
      cmdclass={"build_py": BuildPy})
