"""One package per persona's pages, each with a ``section`` and a ``templates/`` folder
(see :mod:`tinymlaas.web.site`); a new persona's pages are a new package here."""
