"""The live web dashboard of the fan-out (`clickfan dashboard`, started by `clickfan demo`).

``readers`` reads the pipeline from the real services (and runs lagmon's
monitor in-process for Burrow's statuses), ``state`` shapes one reading into
the JSON the page reads, ``actions`` are the page's buttons, ``deadletters``
the dead letters by group and reason with their re-drive and purge,
``server`` the aiohttp application (server-sent events), ``commands`` the CLI
command, and ``static/`` the page itself: plain HTML, CSS and ES modules
(app.js, deadletters.js), with the chart library (uPlot) installed by npm
from ``static/package.json`` (`make install`).
"""
