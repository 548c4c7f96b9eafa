"""What every mesh service is given: the store, settings, clock, events, agents, compiled policies and the
record of task changes. Services take the parts they use in their constructor, never the whole mesh."""
