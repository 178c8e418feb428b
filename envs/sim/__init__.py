"""What happens when the ego drives a scene: the kinematic simulation (ego tracking a trajectory, other agents
replaying their logs, :mod:`envs.sim.simulation`), the glue from scenes to the pure scorer (:mod:`envs.sim.scoring`),
the one reward configuration (:mod:`envs.sim.reward`), the episode metrics (:mod:`envs.sim.metrics`: collision,
route completion, driving score) and the step's reward terms computed on first read (:mod:`envs.sim.terms`)."""
