"""next_action skill: rules choosing the agent's next move on an outbound call."""
