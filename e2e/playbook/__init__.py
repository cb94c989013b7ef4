"""Scenario files: reproduce an upgrade scenario from YAML (``apiVersion: upgrade-gate/v1alpha1``).

``load`` reads and checks a file against ``scenario.schema.json`` (line numbers,
the path of each bad field); ``engine`` plays it with the harness's
``Stage``; ``checks`` holds the named conditions and expectations;
``plugin`` makes each ``*.scenario.yaml`` a pytest test. ``python -m
e2e.reproduce FILE`` is the developers' command.
"""
