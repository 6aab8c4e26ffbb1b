"""Command-line tools around the product: ``simulate``, ``arena``, ``bench``, ``bench_fanout``, ``devservers``,
and the world they run in (``fakes``, ``harness``). Never deployed (``.funcignore``)."""
