"""State transitions, one module per kind: each is a pure function over one `RunTransaction`.

Each event touches the job, its run, and the job's dependents by key, so its cost
follows the job's out-degree, never the manifest's size.
"""
