"""An emulated robot: one Dynamixel device per joint, wired to a physics plant with hidden
dynamics. The emulator serves it over a pty or a socket in real time; the mock bus calls it
in-process.

Each physics step of ``physics_dt``:

1. every device runs its firmware checks (bus watchdog);
2. each actuated device says what its driver does (:meth:`DynamixelDevice.drive`): a current
   request I_k [A] in the current-based modes, or a PWM duty d_k in PWM mode (nothing with
   torque off);
3. actuation latency: the drive applied at time t is the one commanded at
   t - latency_steps * control_dt (the hidden ``latency_steps`` factor, as in the env core);
4. the plant advances with joint effort tau_k = current_to_effort(I_k) = K_t I_k / r, or in
   PWM mode with duty direction * d_k; the plant applies the servo's torque-speed envelope to
   joints with ``servo_physics`` (and the hidden strength and supply voltage factors);
5. the sensors report q_meas = q + b_j + sigma_q * N(0, 1) and dq_meas = dq + sigma_dq * N(0, 1)
   (hidden ``<joint>_bias``, ``pos_noise`` and ``vel_noise``) into the present registers, with
   the motor's actual current and the supply voltage after sag as the plant reports them
   (Present Current, Present PWM, Present Input Voltage).

The servos' hidden mounting (:class:`~robot_meta.hardware.servos.Mounting`: the
``<joint>_encoder_offset`` and ``<joint>_reversed`` keys of a hidden-params file) acts on both
sides of the plant: a reversed servo (s = -1) pushes with s * tau for a commanded current and
reports s * q_meas, s * dq_meas and s * I; every reported position is then shifted by the
encoder offset o (rad at the shaft, o * r in joint units): q_reported = s * q_meas + o * r.
This is what a servo mounted the other way round, or with its horn at another spline tooth,
shows before ``robot-meta calibrate``.

Nothing here imports a simulator at module load: the twin and MuJoCo plants import lazily.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from robot_meta.hardware.dynamixel.control_table import BAUD_RATES, get_table
from robot_meta.hardware.dynamixel.device import DRIVE_OFF, DynamixelDevice
from robot_meta.hardware.dynamixel.network import DeviceNetwork
from robot_meta.hardware.hardware_map import HardwareMap

if TYPE_CHECKING:
    from robot_meta.hardware.servos import Mounting, ServoEffects
    from robot_meta.sim.batched_env import PhysicsBackend
    from robot_meta.sim.robots.robot_def import RobotDef

MAX_CATCH_UP_S = 1.0  # advance_to never simulates more than this in one call


class Plant(Protocol):
    """The physics behind the devices, in the order of ``joints``."""

    joints: tuple[str, ...]

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """True joint positions and velocities, (nq,) each."""

    def step(self, effort: np.ndarray, dt: float, duty: np.ndarray | None = None) -> None:
        """Advance dt seconds holding the actuated joints' commands, (n_actuated,) each: the
        effort [N*m or N] of a joint in a current-based mode, and where ``duty`` is finite,
        PWM mode with that duty in [-1, 1] instead (joint frame: +1 pushes toward +q)."""

    def motor_current(self) -> np.ndarray | None:
        """The actuated joints' actual motor currents [A] over the last step, in the frame of
        the effort (effort = K_t I / r), or None when the plant does not model them."""

    def supply_voltage(self) -> float | None:
        """The servos' supply voltage after sag [V] over the last step, or None when the plant
        does not model it (the servo's nominal voltage)."""

    def close(self) -> None: ...


class StaticPlant:
    """No physics: the joints stay where a test puts them (``set_state``)."""

    def __init__(self, joints: tuple[str, ...]):
        self.joints = joints
        self.q = np.zeros(len(joints))
        self.dq = np.zeros(len(joints))
        self.last_effort = np.zeros(0)
        self.last_duty: np.ndarray | None = None

    def set_state(self, q: np.ndarray, dq: np.ndarray) -> None:
        """Place the joints."""
        self.q = np.asarray(q, dtype=float).copy()
        self.dq = np.asarray(dq, dtype=float).copy()

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.q, self.dq

    def step(self, effort: np.ndarray, dt: float, duty: np.ndarray | None = None) -> None:
        """Record the commands (the joints do not move)."""
        self.last_effort = np.asarray(effort, dtype=float).copy()
        self.last_duty = None if duty is None else np.asarray(duty, dtype=float).copy()

    def motor_current(self) -> np.ndarray | None:
        return None

    def supply_voltage(self) -> float | None:
        return None

    def close(self) -> None:
        pass


class TwinPlant:
    """The PyBullet twin (:class:`robot_meta.sim.twin.TwinBackend`) with hidden params and the
    servo effects of a hidden-params file's ``[servo]`` table (None: all off). The twin applies
    the servo envelope (current and PWM mode) every physics step and reports the motor currents
    and the supply after sag."""

    def __init__(self, robot: RobotDef, params: np.ndarray, physics_dt: float | None = None,
                 qpos0: np.ndarray | None = None, effects: ServoEffects | None = None):
        from robot_meta.sim.twin import TWIN_PHYSICS_DT, TwinBackend

        self.physics_dt = physics_dt or TWIN_PHYSICS_DT
        self.joints = tuple(robot.joints)
        self.twin = TwinBackend(robot, num_envs=1, physics_dt=self.physics_dt, effects=effects)
        self.twin.set_params(np.array([0]), np.asarray(params, dtype=float)[None])
        q0 = np.zeros(len(self.joints)) if qpos0 is None else np.asarray(qpos0, dtype=float)
        self.twin.set_state(np.array([0]), q0[None], np.zeros((1, len(self.joints))))

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.twin.qpos[0], self.twin.qvel[0]

    def step(self, effort: np.ndarray, dt: float, duty: np.ndarray | None = None) -> None:
        nsub = max(1, round(dt / self.physics_dt))
        self.twin.step_effort(np.asarray(effort, dtype=float)[None], nsub,
                              None if duty is None else np.asarray(duty, dtype=float)[None])

    def motor_current(self) -> np.ndarray | None:
        return np.asarray(self.twin.motor_current[0])

    def supply_voltage(self) -> float | None:
        return float(self.twin.supply_now[0])

    def close(self) -> None:
        self.twin.close()


class BackendPlant:
    """Any :class:`robot_meta.sim.batched_env.PhysicsBackend` with one env (e.g. the MuJoCo
    backend). It steps whole control periods with normalized actions, so efforts become
    ctrl = effort / gear and ``dt`` must be the robot's control period. The backend applies the
    envelope of its servo joints itself (MuJoCo's ``<dcmotor>``) to current requests.

    PWM mode is an approximation: the duty d becomes, once per control period, the torque of
    ``ServoModel.pwm_torque`` at the joint's speed w at the start of the period,
    tau = s tau_s(V) (d - s w / w0(V)), held for the whole period (the backend cannot take a
    voltage command); ctrl = tau / (s gear), so that the backend's strength-scaled gear gives
    back tau. V and s are the hidden ``supply_voltage`` and ``<joint>_strength`` factors when
    the robot has them (else the nominal voltage and 1), and the torque is capped by the
    backend's ctrl range (max_current_a).
    """

    def __init__(self, robot: RobotDef, backend: PhysicsBackend, params: np.ndarray,
                 qpos0: np.ndarray | None = None):
        self.joints = tuple(robot.joints)
        self.backend = backend
        hw = robot.hardware_map
        self._hw = [hw.joint(j) for j in robot.actuated_joints]
        self._gear = np.array([j.gear for j in self._hw])
        self._cols = [self.joints.index(j) for j in robot.actuated_joints]
        val = dict(zip(robot.factor_names, np.asarray(params, dtype=float).tolist(), strict=True))
        self._strength = np.array([val.get(f"{j}_strength", 1.0) for j in robot.actuated_joints])
        motors = [j.servo.motor for j in self._hw if j.servo.motor is not None]
        self._supply = val.get("supply_voltage", motors[0].nominal_voltage if motors else math.nan)
        self.physics_dt = robot.control_dt
        backend.set_params(np.array([0]), np.asarray(params, dtype=float)[None])
        q0 = np.zeros(len(self.joints)) if qpos0 is None else np.asarray(qpos0, dtype=float)
        backend.set_state(np.array([0]), q0[None], np.zeros((1, len(self.joints))))

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.backend.qpos[0]), np.asarray(self.backend.qvel[0])

    def step(self, effort: np.ndarray, dt: float, duty: np.ndarray | None = None) -> None:
        # ctrl = tau / gear, so that the backend's gear * ctrl gives back tau.
        ctrl = np.asarray(effort, dtype=float) / self._gear
        if duty is not None:
            _, dq = self.state()
            for k, d in enumerate(np.asarray(duty, dtype=float).tolist()):
                if not math.isfinite(d):
                    continue
                j, s = self._hw[k], float(self._strength[k])
                r = j.transmission
                # Motor output speed w = qdot / r; tau at the output, tau / r at the joint.
                tau = float(j.servo.pwm_torque(d, float(dq[self._cols[k]]) / r, self._supply,
                                               np.inf, s))
                ctrl[k] = tau / r / (s * self._gear[k]) if s > 0 else 0.0
        self.backend.step(ctrl[None])

    def motor_current(self) -> np.ndarray | None:
        return None

    def supply_voltage(self) -> float | None:
        return float(self._supply) if math.isfinite(self._supply) else None

    def close(self) -> None:
        self.backend.close()


# Hidden parameters: None (nominal), a TOML path, {factor: value}, or an (F,) vector.
HiddenParams: TypeAlias = "str | Path | Mapping[str, float] | Sequence[float] | np.ndarray | None"


def resolve_params(robot: RobotDef, params: HiddenParams) -> np.ndarray:
    """Hidden params as an (F,) vector from None (nominal), a TOML path, a {factor: value}
    dict, or a vector."""
    from robot_meta.sim.randomize import load_params_file, nominal_params, params_from_dict

    if params is None:
        return nominal_params(robot)
    if isinstance(params, str | Path):
        _, vec = load_params_file(params, robot=robot.name)
        return vec
    if isinstance(params, Mapping):
        return params_from_dict(robot, params, "params")
    vec = np.asarray(params, dtype=float)
    if vec.shape != (len(robot.factors),):
        raise ValueError(f"params for {robot.name!r} must have shape ({len(robot.factors)},), "
                         f"got {vec.shape}")
    return vec


class EmulatedRobot:
    """Emulated devices for every joint of a hardware map, driving a plant.

    Args:
        hw: the hardware map (which device, which ID, unit conversions).
        plant: the physics.
        factors: hidden sensing/timing factors {name: value}: ``latency_steps``,
            ``pos_noise``, ``vel_noise``, ``<joint>_bias`` (missing ones are 0).
        control_dt: the control period that ``latency_steps`` counts in.
        physics_dt: the plant step.
        baud: the baud rate the devices are configured for.
        seed: seeds the sensor-noise generator.
        mounting: the servos' hidden mounting (encoder offsets, reversed servos; module
            docstring); None: every servo mounted as designed.
    """

    def __init__(self, hw: HardwareMap, plant: Plant, *, factors: Mapping[str, float] | None = None,
                 control_dt: float = 0.02, physics_dt: float = 0.001, baud: int = 1_000_000,
                 seed: int = 0, mounting: Mounting | None = None):
        self.hw = hw
        self.plant = plant
        self.physics_dt = physics_dt
        self.control_dt = control_dt
        baud_index = {v: k for k, v in BAUD_RATES.items()}.get(baud, 3)
        self.devices: dict[int, DynamixelDevice] = {
            j.motor_id: DynamixelDevice(j.motor_id, get_table(j.model), j, baud_index)
            for j in hw.joints
        }
        self.network = DeviceNetwork(self.devices.values())
        self._joints = hw.joints
        self._all_devices = list(self.devices.values())
        self._joint_devices = [self.devices[j.motor_id] for j in hw.joints]
        self._act_joints = hw.actuated
        self._act_devices = [self.devices[j.motor_id] for j in hw.actuated]
        # Mounting: s = -1 for a reversed servo; the offset in joint units, o * r.
        self.mounting = mounting
        self._sign = np.array([float(mounting.sign(j.joint)) if mounting else 1.0
                               for j in hw.joints])
        self._offset = np.array([mounting.offset(j.joint) * j.transmission if mounting else 0.0
                                 for j in hw.joints])
        self._act_sign = np.array([self._sign[k] for k, j in enumerate(hw.joints) if j.actuated])
        self._direction = np.array([float(j.direction) for j in hw.actuated])
        motors = [j.servo.motor for j in hw.actuated if j.servo.motor is not None]
        self.nominal_supply_v = motors[0].nominal_voltage if motors else math.nan
        self._cols = [plant.joints.index(j.joint) for j in hw.joints]
        self._act = [k for k, j in enumerate(hw.joints) if j.actuated]
        f = dict(factors or {})
        self.latency_s = float(f.get("latency_steps", 0.0)) * control_dt
        self.pos_noise = float(f.get("pos_noise", 0.0))
        self.vel_noise = float(f.get("vel_noise", 0.0))
        self.bias = np.array([float(f.get(f"{j.joint}_bias", 0.0)) for j in hw.joints])
        self.rng = np.random.default_rng(seed)
        self.time = 0.0
        self.steps = 0
        self._history: deque[tuple[float, np.ndarray]] = deque()
        # The drive of each actuated joint (motor frame): [current request A, duty] rows, duty
        # NaN in the current-based modes (see DynamixelDevice.drive).
        self._off = np.array([DRIVE_OFF] * len(self._act), dtype=float).reshape(-1, 2)
        self.applied_drive = self._off.copy()
        self._delayed = self._off.copy()
        self.motor_current = np.zeros(len(self._act))  # actual motor currents [A], motor frame
        self.supply_v = self.nominal_supply_v
        self._refresh(0.0)

    @property
    def applied_current(self) -> np.ndarray:
        """The current requests [A] applied in the last step (0 in PWM mode, motor frame)."""
        return self.applied_drive[:, 0]

    @classmethod
    def from_robot(cls, robot: str | RobotDef, params: HiddenParams = None, *,
                   plant: str | PhysicsBackend = "twin",
                   physics_dt: float | None = None, qpos0: Mapping[str, float] | None = None,
                   baud: int = 1_000_000, seed: int = 0) -> EmulatedRobot:
        """Build from a bundled robot: ``plant`` is ``"twin"`` (PyBullet), ``"mujoco"``,
        ``"none"`` (a :class:`StaticPlant`) or a PhysicsBackend instance with one env. A
        hidden-params file's ``[servo]`` effects go to the twin."""
        from robot_meta.hardware.servos import Mounting
        from robot_meta.sim.robots.robot_def import RobotDef, get_robot

        rdef = robot if isinstance(robot, RobotDef) else get_robot(robot)
        effects = None
        mounting = Mounting()
        if isinstance(params, str | Path):
            from robot_meta.sim.randomize import load_twin_file

            _, vec, fx, mounting = load_twin_file(params, robot=rdef.name)  # one read of the file
            if plant == "twin":
                effects = fx
        elif isinstance(params, Mapping):
            from robot_meta.sim.randomize import params_from_dict, split_mounting

            mounting, values = split_mounting(rdef, params, "params")
            vec = params_from_dict(rdef, values, "params")
        else:
            vec = resolve_params(rdef, params)
        pose = dict(rdef.rest_pose)  # robot.toml: where each joint settles unpowered
        pose.update(qpos0 or {})
        q0 = np.array([pose.get(j, 0.0) for j in rdef.joints])
        pl: Any
        if plant == "twin":
            pl = TwinPlant(rdef, vec, physics_dt, q0, effects=effects)
            dt = pl.physics_dt
        elif plant == "mujoco":
            from robot_meta.sim.mujoco_backend import MujocoBackend

            pl = BackendPlant(rdef, MujocoBackend(rdef, 1, nthread=0), vec, q0)
            dt = pl.physics_dt
        elif plant == "none":
            pl = StaticPlant(tuple(rdef.joints))
            pl.set_state(q0, np.zeros(len(q0)))
            dt = physics_dt or 0.001
        elif isinstance(plant, str):
            raise ValueError(f"unknown plant {plant!r}; use 'twin', 'mujoco' or 'none'")
        else:
            pl = BackendPlant(rdef, plant, vec, q0)
            dt = pl.physics_dt
        factors = dict(zip(rdef.factor_names, vec.tolist(), strict=True))
        return cls(rdef.hardware_map, pl, factors=factors, control_dt=rdef.control_dt,
                   physics_dt=dt, baud=baud, seed=seed, mounting=mounting)

    # ---- time ---------------------------------------------------------------------------------
    def advance_to(self, t: float) -> int:
        """Step physics until ``time`` reaches t (at most MAX_CATCH_UP_S of simulated time per
        call; beyond that the clock jumps). Returns the number of steps taken."""
        n = int(math.floor((t - self.time) / self.physics_dt + 1e-9))
        if n <= 0:
            return 0
        max_n = int(MAX_CATCH_UP_S / self.physics_dt)
        if n > max_n:
            self.time = t - max_n * self.physics_dt
            n = max_n
        for _ in range(n):
            self.tick()
        return n

    def tick(self) -> None:
        """One physics step (see the module docstring)."""
        now = self.time
        for d in self._all_devices:
            d.check_watchdog(now)
        devs = self._act_devices
        commanded = np.array([d.drive() if d.online else DRIVE_OFF for d in devs],
                             dtype=float).reshape(-1, 2)
        # Latency: apply the newest command issued at or before now - latency_s.
        if self.latency_s > 0.0:
            self._history.append((now, commanded))
            cutoff = now - self.latency_s + 1e-9
            while self._history and self._history[0][0] <= cutoff:
                self._delayed = self._history.popleft()[1]
            applied = self._delayed
        else:
            applied = commanded
        # A servo whose torque is off now drives nothing, whatever is still in the pipeline.
        on = [d.online and d.torque_enabled for d in devs]
        if not all(on):
            applied = np.where(np.array(on)[:, None], applied, self._off)
        self.applied_drive = applied
        pwm = np.isfinite(applied[:, 1])
        # A reversed servo (sign s = -1) pushes the joint with s * K_t I / r.
        effort = np.array([0.0 if p else s * j.current_to_effort(float(i)) for j, i, p, s in
                           zip(self._act_joints, applied[:, 0], pwm, self._act_sign, strict=True)])
        # Joint frame: a duty d pushes the joint toward s * direction * d.
        duty = self._act_sign * self._direction * applied[:, 1] if pwm.any() else None
        self.plant.step(effort, self.physics_dt, duty)
        self.time = now + self.physics_dt
        self.steps += 1
        self._refresh(self.physics_dt)

    def _estimate_currents(self, dq: np.ndarray) -> np.ndarray:
        """Motor currents [A] (motor frame) for a plant that does not report them: the torque
        the servo envelope gives at the joint's speed after the step, over K_t (nominal
        strength); the request itself for a joint without servo physics."""
        out = np.zeros(len(self._act))
        volts = self.supply_v
        for n, (k, j, dev, s) in enumerate(zip(self._act, self._act_joints, self._act_devices,
                                               self._act_sign, strict=True)):
            i_req, d = (float(x) for x in self.applied_drive[n])
            servo = j.servo
            if not (dev.online and dev.torque_enabled):
                continue  # the driver is off: no current
            if not (j.servo_physics and servo.has_motor and math.isfinite(volts)):
                out[n] = i_req
                continue
            kt = j.torque_constant
            omega = s * j.direction * float(dq[self._cols[k]]) / j.transmission  # motor rad/s
            t_max = kt * dev.get("current_limit") * j.current_unit_a
            if math.isfinite(d):
                tau = servo.pwm_torque(d, omega, volts, t_max)
            else:
                tau = servo.envelope(kt * i_req, omega, volts, t_max)
            out[n] = float(tau) / kt
        return out

    def _refresh(self, dt: float) -> None:
        q, dq = self.plant.state()
        volts = self.plant.supply_voltage()
        self.supply_v = self.nominal_supply_v if volts is None else volts
        measured = self.plant.motor_current()
        # The plant's currents are in the effort's frame (effort = K_t I / r): the motor's
        # frame is s * direction * I (s = -1 for a reversed servo).
        self.motor_current = (self._estimate_currents(dq) if measured is None
                              else self._act_sign * self._direction
                              * np.asarray(measured, dtype=float))
        n = len(self._joints)
        noise = self.rng.standard_normal((2, n)) if (self.pos_noise or self.vel_noise) else None
        currents = dict(zip(self._act, self.motor_current.tolist(), strict=True))
        duties = dict(zip(self._act, self.applied_drive[:, 1].tolist(), strict=True))
        for k, d in enumerate(self._joint_devices):
            c = self._cols[k]
            qk = float(q[c]) + self.bias[k]
            dqk = float(dq[c])
            if noise is not None:
                qk += self.pos_noise * noise[0, k]
                dqk += self.vel_noise * noise[1, k]
            # Mounting: q_reported = s * q_meas + o * r, dq_reported = s * dq_meas.
            qk = self._sign[k] * qk + self._offset[k]
            dqk = self._sign[k] * dqk
            d.update_present(qk, dqk, currents.get(k, 0.0), self.time, dt,
                             duties.get(k, math.nan), self.supply_v)

    # ---- inspection and faults --------------------------------------------------------------
    def true_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The plant's true joint state in hardware-map order (no bias, no noise)."""
        q, dq = self.plant.state()
        return np.asarray(q)[self._cols].copy(), np.asarray(dq)[self._cols].copy()

    def device(self, dxl_id: int) -> DynamixelDevice:
        """The device at an ID."""
        try:
            return self.devices[dxl_id]
        except KeyError:
            raise KeyError(f"no emulated device with ID {dxl_id}; IDs: {sorted(self.devices)}"
                           ) from None

    def close(self) -> None:
        self.plant.close()
