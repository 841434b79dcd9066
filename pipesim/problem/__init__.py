"""What is simulated: ops and their dependency rules, the pipeline, costs, links, and the
settings a user gives that become them. Plain, validated, immutable data."""
