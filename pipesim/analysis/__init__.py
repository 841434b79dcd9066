"""What one trace says: the summary records, why each device was idle, activation memory over
time, the critical path, and the checker of any timeline. Pure functions of a trace."""
