"""The parts of data preparation (:mod:`wmkit.prepare` runs them): filters, the token window, the split,
the tokenizing workers, the prepared-data store and its cache."""
