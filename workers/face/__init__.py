"""Face embedding on person crops: quality gates, per-track selection and the face worker (``tubeline worker face``)."""
