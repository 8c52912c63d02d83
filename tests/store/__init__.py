"""Tests of the time-series stores (a package so the contract suite can import its helpers)."""
