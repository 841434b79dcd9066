"""What is simulated: ops and their dependency rules, the pipeline, costs, links, the model's
figures, and how settings become them (`build`). Plain, validated, immutable data."""
