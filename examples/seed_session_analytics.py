"""Seed page: "Session Analytics"."""
from repertory import Agent, Session


def analyse_session(session):
    return {
        "total_interactions": len(session.get_history()),
        "session_duration": session.get_duration(),
        "topics_discussed": session.extract_topics(),
        "user_satisfaction": session.calculate_satisfaction_score(),
        "agent_performance": session.get_performance_metrics()
    }


session = Session(agent=Agent(name="Assistant", instructions="You are a helpful assistant"))
session.chat("I am planning a trip to Lisbon in May")
session.chat("Which Lisbon museums open in May? Thanks, that is helpful")
session.rate(0.9, "found the museums")  # explicit feedback; without it a documented heuristic scores
report = analyse_session(session)
assert report["total_interactions"] == 4
assert "lisbon" in report["topics_discussed"]
assert report["user_satisfaction"] == {"score": 0.9, "method": "ratings", "ratings": 1}
assert report["agent_performance"]["turns"] == 2
assert report["agent_performance"]["agents"]["Assistant"]["model_calls"] == 2
