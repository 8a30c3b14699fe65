"""The FrameSieve gateway agent: watches cameras, decides most frames locally, escalates the rest."""

__version__ = "0.1.0"
