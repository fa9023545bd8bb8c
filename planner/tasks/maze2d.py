"""Maze2D in the D4RL frame, simulated by Gymnasium-Robotics PointMaze.

PointMaze (MuJoCo point mass, gear 100, timestep 0.01, actions clipped to [-1, 1], velocity clipped
to [-5, 5] before each step) has the same physics as D4RL's maze2d; only the coordinate frame
differs. Everything this project exposes (datasets, configs, plots, scores) is in the D4RL frame:
``x`` runs along the layout's row index, ``y`` along its column index, and the centre of cell
``(row, col)`` is at ``(row - 0.2, col - 0.2)``. For a maze of ``R`` rows and ``C`` columns:

    x_gym = y_d4rl + 0.7 - C / 2        y_gym = R / 2 - 0.7 - x_d4rl
    v_gym = (vy_d4rl, -vx_d4rl)         a_gym = (ay_d4rl, -ax_d4rl)
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Literal

import gymnasium as gym
import mujoco
import numpy as np

from planner.tasks.base import normalized_score


def _import_gymnasium_robotics() -> ModuleType:
    """``gymnasium_robotics`` without the notice about Adroit environments' rewards that its
    import prints (this project uses none of them); anything else it prints passes through."""
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        import gymnasium_robotics
    for line in printed.getvalue().splitlines():
        if "AdroitHand" not in line:
            print(line, file=sys.stderr)
    return gymnasium_robotics


gym.register_envs(_import_gymnasium_robotics())

GOAL_RADIUS = 0.5  # reward 1 per step within this distance of the goal
CELL_NOISE = 0.1  # starts and random goals: a free cell + U(-0.1, 0.1) per axis
START_VELOCITY_STD = 0.1  # starting velocity ~ N(0, 0.1^2)
VELOCITY_LIMIT = 5.0  # PointMaze clips |qvel| to this before every step
STEP_SECONDS = 0.01  # simulated time of one environment step
WALL_OFFSET = 0.7  # a cell (r, c) spans x in [r - 0.7, r + 0.3], y in [c - 0.7, c + 0.3]
POINT_RADIUS = 0.1  # PointMaze's point mass is a sphere of this radius
OBSTACLE_HALF_HEIGHT = 0.2  # added obstacles are as tall as the maze blocks


@dataclass(frozen=True)
class MazeTask:
    """One Maze2D task: layout, evaluation goal, episode length and D4RL reference returns."""

    name: str
    layout: tuple[str, ...]  # rows of '#' wall, 'O' free, 'G' free + evaluation goal
    pointmaze_id: str
    max_episode_steps: int
    dataset_steps: int  # default size of the regenerated dataset
    d4rl_ref_min: float  # D4RL's random-policy return
    d4rl_ref_max: float  # D4RL's controller return
    family: ClassVar[str] = "maze2d"

    def make_env(
        self,
        multi_task: bool = False,
        obstacles: Sequence[Obstacle] = (),
        start: Sequence[float] | None = None,
    ) -> Maze2DEnv:
        """A fresh evaluation environment (:class:`Maze2DEnv`) of this maze."""
        return Maze2DEnv(self, multi_task, obstacles, start)

    def normalized(self, returns: np.ndarray | float) -> np.ndarray:
        """D4RL normalized score of ``returns`` by D4RL's references for this maze."""
        return normalized_score(returns, self.d4rl_ref_min, self.d4rl_ref_max)

    @property
    def walls(self) -> np.ndarray:
        """``[rows, cols]`` bool, True at wall cells."""
        return np.array([[ch == "#" for ch in row] for row in self.layout])

    @property
    def free_cells(self) -> np.ndarray:
        """``[F, 2]`` int (row, col) of every free cell, goal cells included, in row-major order."""
        return np.argwhere(~self.walls)

    @property
    def eval_goal(self) -> np.ndarray:
        """``[2]`` the evaluation goal, the 'G' cell's integer (row, col) in qpos units."""
        (goal,) = np.argwhere(np.array([list(row) for row in self.layout]) == "G")
        return goal.astype(np.float64)

    @property
    def maze_map(self) -> list[list[int]]:
        """The layout as Gymnasium-Robotics' ``maze_map`` (1 wall, 0 free)."""
        return [[int(ch == "#") for ch in row] for row in self.layout]


MAZE_TASKS: dict[str, MazeTask] = {
    task.name: task
    for task in (
        MazeTask(
            "maze2d-umaze-v1",
            ("#####", "#GOO#", "###O#", "#OOO#", "#####"),
            "PointMaze_UMaze-v3",
            300,
            1_000_000,
            23.85,
            161.86,
        ),
        MazeTask(
            "maze2d-medium-v1",
            (
                "########",
                "#OO##OO#",
                "#OO#OOO#",
                "##OOO###",
                "#OO#OOO#",
                "#O#OO#O#",
                "#OOO#OG#",
                "########",
            ),
            "PointMaze_Medium-v3",
            600,
            2_000_000,
            13.13,
            277.39,
        ),
        MazeTask(
            "maze2d-large-v1",
            (
                "############",
                "#OOOO#OOOOO#",
                "#O##O#O#O#O#",
                "#OOOOOO#OOO#",
                "#O####O###O#",
                "#OO#O#OOOOO#",
                "##O#O#O#O###",
                "#OO#OOO#OGO#",
                "############",
            ),
            "PointMaze_Large-v3",
            800,
            4_000_000,
            6.7,
            273.99,
        ),
    )
}


def get_maze_task(name: str) -> MazeTask:
    """The task named ``maze2d-{umaze,medium,large}-v1``; a clear error for anything else."""
    if name not in MAZE_TASKS:
        raise ValueError(f"unknown Maze2D task {name!r}; known: {', '.join(MAZE_TASKS)}")
    return MAZE_TASKS[name]


def find_maze_task(name: str) -> MazeTask | None:
    """The Maze2D task a dataset name or file name refers to (``maze2d-umaze...``), if any."""
    for task in MAZE_TASKS.values():
        if task.name.rsplit("-", 1)[0] in name:
            return task
    return None


# --- coordinate frames -----------------------------------------------------------------------


def frame_shifts(task: MazeTask) -> tuple[float, float]:
    """``(x_shift, y_shift)`` with ``x_gym = y_d4rl + x_shift`` and ``y_gym = y_shift - x_d4rl``."""
    rows, cols = len(task.layout), len(task.layout[0])
    return WALL_OFFSET - cols / 2, rows / 2 - WALL_OFFSET


def d4rl_to_gym_position(position: np.ndarray, task: MazeTask) -> np.ndarray:
    """``[..., 2]`` D4RL-frame positions → PointMaze-frame positions."""
    x_shift, y_shift = frame_shifts(task)
    return np.stack([position[..., 1] + x_shift, y_shift - position[..., 0]], axis=-1)


def gym_to_d4rl_position(position: np.ndarray, task: MazeTask) -> np.ndarray:
    """``[..., 2]`` PointMaze-frame positions → D4RL-frame positions."""
    x_shift, y_shift = frame_shifts(task)
    return np.stack([y_shift - position[..., 1], position[..., 0] - x_shift], axis=-1)


def d4rl_to_gym_vector(vector: np.ndarray) -> np.ndarray:
    """``[..., 2]`` D4RL-frame velocities or actions → PointMaze frame (a rotation)."""
    return np.stack([vector[..., 1], -vector[..., 0]], axis=-1)


def gym_to_d4rl_vector(vector: np.ndarray) -> np.ndarray:
    """``[..., 2]`` PointMaze-frame velocities or actions → D4RL frame."""
    return np.stack([-vector[..., 1], vector[..., 0]], axis=-1)


# --- simulation ------------------------------------------------------------------------------


def make_pointmaze(task: MazeTask) -> Any:
    """The unwrapped Gymnasium-Robotics PointMaze env for ``task``'s layout (no time limit)."""
    env = gym.make(task.pointmaze_id, maze_map=task.maze_map, continuing_task=True)
    return env.unwrapped


@dataclass(frozen=True)
class Obstacle:
    """A solid obstacle added to the maze, D4RL frame: a disc (``center``, ``radius``; a vertical
    cylinder in MuJoCo) or an axis-aligned box (``low``, ``high``), solid from step
    ``appears_at`` of an episode on (0: from the start)."""

    shape: Literal["circle", "box"]
    center: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0
    low: tuple[float, float] = (0.0, 0.0)
    high: tuple[float, float] = (0.0, 0.0)
    appears_at: int = 0

    @staticmethod
    def from_spec(spec: Mapping[str, Any]) -> Obstacle:
        """From a constraint spec ``{type: circle, center, radius}`` or ``{type: box, low,
        high}``, optionally with ``appears_at`` (other keys, such as guidance weights, are
        ignored)."""
        appears_at = int(spec.get("appears_at", 0))
        if appears_at < 0:
            raise ValueError(f"appears_at must be a step >= 0; got {appears_at}")
        if spec.get("type") == "circle":
            center, radius = _pair(spec["center"]), float(spec["radius"])
            return Obstacle("circle", center=center, radius=radius, appears_at=appears_at)
        if spec.get("type") == "box":
            low, high = _pair(spec["low"]), _pair(spec["high"])
            return Obstacle("box", low=low, high=high, appears_at=appears_at)
        raise ValueError(f"an obstacle is a circle or a box; got type {spec.get('type')!r}")

    def depth(self, positions: np.ndarray) -> np.ndarray:
        """``[...]`` how far positions ``[..., 2]`` are inside the obstacle (negative outside)."""
        if self.shape == "circle":
            return self.radius - np.linalg.norm(positions - np.asarray(self.center), axis=-1)
        inside = np.minimum(positions - np.asarray(self.low), np.asarray(self.high) - positions)
        return np.min(inside, axis=-1)


def _pair(values: Sequence[float]) -> tuple[float, float]:
    x, y = (float(v) for v in values)
    return x, y


def _add_obstacle(spec: Any, obstacle: Obstacle, name: str, task: MazeTask) -> None:
    """Add ``obstacle`` to the MuJoCo model ``spec`` as a fixed geom that collides like a wall."""
    if obstacle.shape == "circle":
        center = d4rl_to_gym_position(np.asarray(obstacle.center), task)
        size = (obstacle.radius, OBSTACLE_HALF_HEIGHT, 0.0)
        kind = mujoco.mjtGeom.mjGEOM_CYLINDER
    else:
        corners = d4rl_to_gym_position(np.asarray([obstacle.low, obstacle.high]), task)
        center = corners.mean(axis=0)
        half_x, half_y = np.abs(corners[1] - corners[0]) / 2
        size = (half_x, half_y, OBSTACLE_HALF_HEIGHT)
        kind = mujoco.mjtGeom.mjGEOM_BOX
    geom = spec.worldbody.add_geom()
    geom.name, geom.type, geom.size = name, kind, size
    geom.pos = (center[0], center[1], OBSTACLE_HALF_HEIGHT)
    geom.contype, geom.conaffinity = 1, 1
    geom.rgba = (0.8, 0.2, 0.2, 1.0)


class PointMassSim:
    """PointMaze's MuJoCo point mass stepped directly, with state and actions in the D4RL frame.

    ``step`` does exactly what ``PointEnv.step`` does (clip the action, clip the velocity, one
    ``mj_step``) without its per-call array copies, so the data generator reaches tens of
    thousands of steps per second. Positions and velocities are Python floats for speed.
    ``obstacles`` are added to the MuJoCo model as solid geoms: the point mass collides with them
    as with the maze walls; :meth:`touching_obstacle` says whether it is in contact with one.
    An obstacle that appears later collides with nothing until :meth:`reveal` reaches its step.
    """

    def __init__(self, task: MazeTask, obstacles: Sequence[Obstacle] = ()):
        self.task = task
        self.obstacles = tuple(obstacles)
        pointmaze = make_pointmaze(task)
        self.model: mujoco.MjModel = pointmaze.point_env.model
        self.data: mujoco.MjData = pointmaze.point_env.data
        if self.obstacles:
            spec = mujoco.MjSpec.from_file(pointmaze.tmp_xml_file_path)
            for index, obstacle in enumerate(self.obstacles):
                _add_obstacle(spec, obstacle, f"obstacle_{index}", task)
            self.model = spec.compile()
            self.data = mujoco.MjData(self.model)
        self._obstacle_geoms = np.array(
            [self.model.geom(f"obstacle_{i}").id for i in range(len(self.obstacles))], np.int64
        )
        self.reveal(0)
        self._qpos = self.data.qpos  # views, valid for the lifetime of ``data``
        self._qvel = self.data.qvel
        self._ctrl = self.data.ctrl
        self._x_shift, self._y_shift = frame_shifts(task)

    def set_state(self, position: np.ndarray, velocity: np.ndarray) -> None:
        """Place the mass at D4RL-frame ``position`` [2] with ``velocity`` [2]."""
        self._qpos[:] = (position[1] + self._x_shift, self._y_shift - position[0])
        self._qvel[:] = (velocity[1], -velocity[0])
        mujoco.mj_forward(self.model, self.data)

    def step(self, action_x: float, action_y: float) -> None:
        """Advance one 0.01 s step under the D4RL-frame action (clipped to [-1, 1])."""
        self._ctrl[0] = min(max(action_y, -1.0), 1.0)
        self._ctrl[1] = -min(max(action_x, -1.0), 1.0)
        qvel = self._qvel
        qvel[0] = min(max(qvel[0], -VELOCITY_LIMIT), VELOCITY_LIMIT)
        qvel[1] = min(max(qvel[1], -VELOCITY_LIMIT), VELOCITY_LIMIT)
        mujoco.mj_step(self.model, self.data)

    def reveal(self, step: int) -> None:
        """Make solid exactly the obstacles that have appeared by episode step ``step``."""
        for geom, obstacle in zip(self._obstacle_geoms, self.obstacles, strict=True):
            solid = int(obstacle.appears_at <= step)
            self.model.geom_contype[geom] = self.model.geom_conaffinity[geom] = solid

    def touching_obstacle(self) -> bool:
        """Whether any active MuJoCo contact involves an added obstacle."""
        if not self.obstacles or self.data.ncon == 0:
            return False
        return bool(np.isin(self.data.contact.geom, self._obstacle_geoms).any())

    def observe(self) -> tuple[float, float, float, float]:
        """``(x, y, vx, vy)`` in the D4RL frame."""
        qpos, qvel = self._qpos, self._qvel
        return (
            self._y_shift - float(qpos[1]),
            float(qpos[0]) - self._x_shift,
            -float(qvel[1]),
            float(qvel[0]),
        )


def sample_cell_position(task: MazeTask, rng: np.random.Generator) -> np.ndarray:
    """``[2]`` a random free cell plus ``U(-0.1, 0.1)`` per axis (starts and random goals)."""
    cell = task.free_cells[rng.integers(len(task.free_cells))]
    return cell + rng.uniform(-CELL_NOISE, CELL_NOISE, size=2)


class Maze2DEnv(gym.Env):
    """D4RL ``maze2d-*-v1`` evaluation environment over Gymnasium-Robotics PointMaze.

    Observations ``[x, y, vx, vy]`` and actions ``[ax, ay]`` are in the D4RL frame. Each episode
    starts in a random free cell (+ U(-0.1, 0.1)) with velocity ~ N(0, 0.1^2); the goal is the
    task's fixed goal, or with ``multi_task`` a random goal drawn like the data-collection goals.
    Reward is 1 for every step that ends within 0.5 of the goal; episodes never terminate and are
    truncated after ``max_episode_steps`` (300 / 600 / 800). ``reset(options=...)`` accepts
    ``start`` [2], ``velocity`` [2] and ``goal`` [2] to fix them.

    Test-time variations (composition scenarios): ``obstacles`` are solid in the simulator from
    their ``appears_at`` step on (a random start or goal that would touch one is drawn again;
    ``info["contact"]`` says whether the point mass touches one after a step), and ``start`` [2]
    replaces the random start cell by this point (+ U(-0.1, 0.1) per axis).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(
        self,
        task: MazeTask | str,
        multi_task: bool = False,
        obstacles: Sequence[Obstacle] = (),
        start: Sequence[float] | None = None,
    ):
        self.task = get_maze_task(task) if isinstance(task, str) else task
        self.multi_task = multi_task
        self.start = None if start is None else np.asarray(start, dtype=np.float64)
        self.max_episode_steps = self.task.max_episode_steps
        self.sim = PointMassSim(self.task, obstacles)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.goal = self.task.eval_goal
        self._elapsed = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        start = sample_cell_position(self.task, self.np_random)
        velocity = self.np_random.normal(0.0, START_VELOCITY_STD, size=2)
        goal = sample_cell_position(self.task, self.np_random) if self.multi_task else None
        if self.start is not None:
            start = self.start + self.np_random.uniform(-CELL_NOISE, CELL_NOISE, size=2)
        while self._touches_obstacle(start):
            start = sample_cell_position(self.task, self.np_random)
        while goal is not None and self._touches_obstacle(goal):
            goal = sample_cell_position(self.task, self.np_random)
        start = np.asarray(options.get("start", start), dtype=np.float64)
        velocity = np.asarray(options.get("velocity", velocity), dtype=np.float64)
        goal = options.get("goal", goal)
        self.goal = self.task.eval_goal if goal is None else np.asarray(goal, dtype=np.float64)
        self.sim.set_state(start, velocity)
        self._elapsed = 0
        return self._observation(), {"goal": self.goal.copy()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.sim.reveal(self._elapsed)
        self.sim.step(float(action[0]), float(action[1]))
        self._elapsed += 1
        observation = self._observation()
        success = bool(np.linalg.norm(observation[:2] - self.goal) <= GOAL_RADIUS)
        truncated = self._elapsed >= self.max_episode_steps
        info = {"success": success, "contact": self.sim.touching_obstacle()}
        return observation, float(success), False, truncated, info

    def _touches_obstacle(self, position: np.ndarray) -> bool:
        """Whether the point mass at ``position`` [2] would overlap an added obstacle."""
        return any(o.depth(position) > -POINT_RADIUS for o in self.sim.obstacles)

    def _observation(self) -> np.ndarray:
        return np.array(self.sim.observe())


def gym_id(task: MazeTask) -> str:
    """The Gymnasium id this project registers for ``task``: ``planner/maze2d-umaze-v1``."""
    return f"planner/{task.name}"


for _task in MAZE_TASKS.values():
    if gym_id(_task) not in gym.registry:
        gym.register(
            gym_id(_task), entry_point="planner.tasks.maze2d:Maze2DEnv", kwargs={"task": _task.name}
        )


@functools.cache
def wall_rectangles(task: MazeTask) -> np.ndarray:
    """``[W, 4]`` each wall cell as ``(x_min, y_min, x_max, y_max)`` in the D4RL frame."""
    cells = np.argwhere(task.walls).astype(np.float64)
    low = cells - WALL_OFFSET
    return np.concatenate([low, low + 1.0], axis=1)
