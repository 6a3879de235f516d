"""一公开: public disclosure pages, their static export and the results feed (SPEC §7)."""
