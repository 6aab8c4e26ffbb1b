"""Failed CI, diagnosed (pure): job logs read (:mod:`.logs`), failures classified and the one diagnosis comment
per run planned (:mod:`.diagnosis`). The DevOps specialist's activities fetch; the typed writers write."""
