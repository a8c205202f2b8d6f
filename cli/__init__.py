"""The ``pagoda-inv`` command line (Typer + rich live only here). Heavy imports happen inside commands."""
