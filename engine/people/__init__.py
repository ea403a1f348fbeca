"""People: clustering faces into people (incremental, per embedding model, the user's corrections as
hard rules), the corrections themselves, reference suggestions, and listings."""
