"""The case library: case records and members, saved items, links between cases, evidence packages with signed
manifests, retention with legal hold, and the administrative unit tree."""
