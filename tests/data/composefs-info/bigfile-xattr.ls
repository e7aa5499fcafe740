/bigfile
