"""What simulated workers do: answers to every field within its rules (strings a pattern finds, files of an
accepted type) and the behaviours of kinds of workers. ``crowdnb.simulate`` sends them through the router."""
