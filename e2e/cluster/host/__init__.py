"""What a cluster provider does to this host and undoes again, shared by the providers.

Commands whose failure quotes their output (commands.py), daemons known by PID (processes.py),
a Docker daemon of our own (dockerd.py), one up/down or build at a time (locks.py), mounts
and cgroups found and removed (mounts.py), sysctls recorded and restored (sysctls.py),
and the Debian packages a provider installs for itself (packages.py).
"""
