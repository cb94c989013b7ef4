from upgrade_gate.hook.cli import run

run()
