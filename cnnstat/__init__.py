"""cnnstat: analytical parameter, MAC, memory and receptive-field counts for CNNs.

Importing this package is cheap on purpose: the CLI, rich and PyYAML load lazily.
"""

__version__ = "0.1.0"


def analyze(model, **kwargs):
    """Analyze a zoo name or spec path; see :func:`cnnstat.analysis.analyze`."""
    from cnnstat.analysis import analyze as _analyze

    return _analyze(model, **kwargs)


__all__ = ["__version__", "analyze"]
