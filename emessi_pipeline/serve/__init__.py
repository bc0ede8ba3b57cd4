"""`emessi serve`: the browser workbench over the dataset (listen, read, code, correct, assign
speakers, review, plots, agreement). A thin layer like the CLI, over ``dataset``: the app in
``app``, its plots in ``plots``, its pages in ``templates/`` and its script and style in
``static/`` (served by the app itself: it works offline and loads nothing from elsewhere).
"""

from .app import Settings, create_app

__all__ = ["Settings", "create_app"]
