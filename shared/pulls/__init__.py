"""Pull request work, pure: review planning (:mod:`.review`, :mod:`.patches`) and the issue → draft PR branch and
commit planner (:mod:`.branch`). No I/O: the GitHub writers execute what these decide."""
