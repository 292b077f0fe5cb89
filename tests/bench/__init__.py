"""Tests of the benchmark helpers under bench/ (real sockets only)."""
