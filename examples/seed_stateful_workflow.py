"""Seed page: "Stateful Workflows"."""
import os

from repertory import Agent, Task, Workflow, Session


class StatefulWorkflow:
    def __init__(self, session_id):
        self.session = Session(session_id=session_id)
        self.agents = self.create_agents()
        self.workflow = None

    def create_agents(self):
        return {
            "planner": Agent(name="Planner", instructions="Plan tasks"),
            "executor": Agent(name="Executor", instructions="Execute tasks"),
            "reviewer": Agent(name="Reviewer", instructions="Review results")
        }

    def create_workflow(self, objective):
        # Load session state
        session_context = self.session.get_context()
        tasks = [
            Task(
                description=f"Plan steps for: {objective}",
                agent=self.agents["planner"],
                context=session_context
            ),
            Task(
                description="Execute the planned steps",
                agent=self.agents["executor"],
                depends_on=["task_1"]
            ),
            Task(
                description="Review and summarise results",
                agent=self.agents["reviewer"],
                depends_on=["task_2"]
            )
        ]
        self.workflow = Workflow(tasks=tasks)

    def run(self, objective):
        self.create_workflow(objective)
        results = self.workflow.run()
        # Save results to session
        self.session.add_result(objective, results)
        self.session.save(f"sessions/{self.session.session_id}_workflow.pkl")
        return results


wf = StatefulWorkflow("workflow_demo")
results = wf.run("launch the newsletter")
assert list(results) == ["task_1", "task_2", "task_3"], results
assert os.path.exists("sessions/workflow_demo_workflow.pkl")
assert wf.session.get_context()["results"][0]["objective"] == "launch the newsletter"
