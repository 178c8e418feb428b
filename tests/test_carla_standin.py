"""The in-process stand-in of the carla 0.9.16 API: value types, enums, connection semantics, synchronous ticks,
spawning, sensors, the Traffic Manager port trap, batches, and the left-handed maps built from the bank layouts."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from envs.carla import standin
from envs.carla.frames import pose_from_transform
from envs.carla.standin import values
from envs.scenes.layouts import get_layout

REAL = values.real_carla()


@pytest.fixture
def serve():
    """Start stand-in servers; every one is shut down after the test."""
    yield standin.serve
    standin.shutdown_all()


def _sync(world, dt=0.05):
    s = world.get_settings()
    s.synchronous_mode, s.fixed_delta_seconds = True, dt
    world.apply_settings(s)


# --------------------------------------------------------------------------------------------------- value types
def test_value_types_are_the_real_ones_when_the_wheel_is_installed():
    if REAL is None:
        assert standin.Transform is values.Transform and standin.Location is values.Location
    else:
        assert standin.Transform is REAL.Transform and standin.BoundingBox is REAL.BoundingBox


def test_fallback_value_types_follow_carla_conventions():
    V = values
    t = V.Transform(V.Location(10, 5, 0), V.Rotation(yaw=90))
    f = t.get_forward_vector()
    assert (round(f.x, 6), round(f.y, 6)) == (0.0, 1.0)  # yaw 90 deg points to +y (left-handed: right/south)
    p = t.transform(V.Location(1, 0, 0))
    assert (round(p.x, 6), round(p.y, 6)) == (10.0, 6.0)
    back = t.inverse_transform(p)
    assert abs(back.x - 1) < 1e-9 and abs(back.y) < 1e-9
    m = np.array(t.get_matrix()) @ np.array(t.get_inverse_matrix())
    assert np.allclose(m, np.eye(4))
    bb = V.BoundingBox(V.Location(0.5, 0, 0.7), V.Vector3D(2.4, 1.0, 0.7))
    world = np.array([[v.x, v.y, v.z] for v in bb.get_world_vertices(t)])
    assert np.allclose(world[:, 0].min(), 9.0) and np.allclose(world[:, 1].max(), 7.9)
    assert bb.contains(V.Location(10, 6.9, 0.7), t) and not bb.contains(V.Location(10, 8.5, 0.7), t)
    assert type(V.Location(1, 2, 3) - V.Location(1, 1, 1)) is V.Vector3D  # as carla: location arithmetic -> vector


@pytest.mark.skipif(REAL is None, reason="the carla wheel is not installed (pip install -e '.[carla]')")
def test_fallback_value_types_agree_with_the_real_carla_wheel():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, y, r = rng.uniform(-80, 80, 3)
        loc = rng.uniform(-50, 50, 3)
        q = rng.uniform(-5, 5, 3)
        ext, off = rng.uniform(0.2, 3.0, 3), rng.uniform(-1, 1, 3)
        ours = values.Transform(values.Location(*loc), values.Rotation(p, y, r))
        real = REAL.Transform(REAL.Location(*loc), REAL.Rotation(p, y, r))
        assert np.allclose(ours.get_matrix(), real.get_matrix(), atol=1e-5)
        assert np.allclose(ours.get_inverse_matrix(), real.get_inverse_matrix(), atol=1e-4)
        for a, b in ((ours.transform(values.Location(*q)), real.transform(REAL.Location(*q))),
                     (ours.inverse_transform(values.Location(*q)), real.inverse_transform(REAL.Location(*q))),
                     (ours.get_right_vector(), real.get_right_vector())):
            assert np.allclose([a.x, a.y, a.z], [b.x, b.y, b.z], atol=1e-4)
        bo = values.BoundingBox(values.Location(*off), values.Vector3D(*ext))
        br = REAL.BoundingBox(REAL.Location(*off), REAL.Vector3D(*ext))
        assert np.allclose([[v.x, v.y, v.z] for v in bo.get_world_vertices(ours)],
                           [[v.x, v.y, v.z] for v in br.get_world_vertices(real)], atol=1e-3)


@pytest.mark.skipif(REAL is None, reason="the carla wheel is not installed (pip install -e '.[carla]')")
def test_enums_match_the_real_module():
    for name in ("CityObjectLabel", "TrafficLightState", "LaneType", "LaneChange", "LaneMarkingType",
                 "LaneMarkingColor", "AttachmentType", "ActorState"):
        real = {k: int(v) for k, v in getattr(REAL, name).names.items()}
        ours = {m: int(getattr(getattr(standin, name), m)) for m in real}
        assert ours == real, name


def test_city_object_labels_are_the_0916_split():
    labels = standin.CityObjectLabel
    assert not hasattr(labels, "Vehicles")
    assert [int(labels[n]) for n in ("Car", "Truck", "Bus", "Motorcycle", "Bicycle")] == [14, 15, 16, 18, 19]


# ------------------------------------------------------------------------------------------------- connection
def test_client_connects_lazily_and_times_out_with_carlas_message():
    client = standin.Client("127.0.0.1", 2999)  # nobody serves this address: constructing never fails
    client.set_timeout(0.05)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"time-out of 50ms .*127\.0\.0\.1:2999"):
        client.get_server_version()
    assert time.perf_counter() - start >= 0.05


def test_synchronous_ticks_settings_reset_and_expired_episodes(serve):
    serve("127.0.0.1", 2100, town="Standin_straight")
    client = standin.Client("localhost", 2100)
    client.set_timeout(0.05)
    assert client.get_server_version() == client.get_client_version() == "0.9.16"
    world = client.get_world()
    _sync(world)
    frame0 = world.get_snapshot().frame
    frames = [world.tick(0.5) for _ in range(3)]
    assert frames == [frame0 + 1, frame0 + 2, frame0 + 3]
    assert world.get_snapshot().timestamp.elapsed_seconds == pytest.approx(0.15)
    assert world.get_snapshot().frame == frames[-1]  # nothing advances without a tick
    new = client.load_world("Standin_junction_1x1")
    assert new.get_settings().synchronous_mode is False  # load_world resets the settings
    assert new.get_map().name.endswith("Standin_junction_1x1")
    with pytest.raises(RuntimeError, match="expired episode"):
        world.get_actors()
    with pytest.raises(RuntimeError, match="not found"):
        client.load_world("Town99")


def test_unknown_town_and_slow_town_loads(serve):
    server = serve("127.0.0.1", 2110, town="Standin_straight")
    client = standin.Client("127.0.0.1", 2110)
    client.set_timeout(0.05)
    assert "/Game/Carla/Maps/Standin_junction_1x1" in client.get_available_maps()
    with pytest.raises(RuntimeError, match=r"^map not found$"):  # the server's RPC error, as CARLA's
        client.load_world("Town99")
    server.slow_load(1.0)  # 20x the client's 50 ms timeout: the client gives up long before the load ends
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"^failed to connect to newly created map$"):
        client.load_world("Standin_junction_1x1")
    assert 0.05 <= time.perf_counter() - start < 1.0  # it gave up before the server finished (lower bound: it waited)
    assert server.town == "Standin_junction_1x1"  # the server finished the load by itself
    client.set_timeout(5.0)
    start = time.perf_counter()
    world = client.load_world("Standin_straight")
    assert time.perf_counter() - start >= 1.0 and world.get_map().name.endswith("Standin_straight")


def test_late_delivery_calls_the_listeners_after_tick_returns_in_order(serve):
    server = serve("127.0.0.1", 2111, town="Standin_straight")
    client = standin.Client("127.0.0.1", 2111)
    client.set_timeout(0.5)
    world = client.get_world()
    _sync(world)
    lib = world.get_blueprint_library()
    spot = world.get_map().get_spawn_points()[0]
    ego = world.spawn_actor(lib.find("vehicle.lincoln.mkz_2020"), spot)
    ahead = standin.Transform(standin.Location(spot.location.x + 5.2, spot.location.y, 0.5), spot.rotation)
    world.spawn_actor(lib.find("vehicle.tesla.model3"), ahead)  # 0.36 m gap: contact within 20 ticks
    got = []
    for type_id in ("sensor.other.imu", "sensor.other.collision"):
        sensor = world.spawn_actor(lib.find(type_id), standin.Transform(), attach_to=ego)
        sensor.listen(lambda data, t=type_id: got.append((t, data.frame)))
    ego.apply_control(standin.VehicleControl(throttle=1.0))
    frame = world.tick(0.5)
    assert got == [("sensor.other.imu", frame)]  # immediate delivery: the IMU reports every tick
    imu = got[0]
    server.deliver_late(0.5)
    frames = [world.tick(0.5) for _ in range(20)]
    assert got == [imu]  # nothing of the ticked frames arrived before tick returned
    time.sleep(1.0)
    hit = [f for t, f in got if t == "sensor.other.collision"]
    assert len(hit) == 1 and hit[0] in frames
    imus = [f for t, f in got[1:] if t == "sensor.other.imu"]
    assert imus == frames  # every frame, in order
    assert got.index(("sensor.other.collision", hit[0])) < got.index(("sensor.other.imu", hit[0]))
    assert isinstance(standin.IMUMeasurement, type)


def test_hung_server_times_out_every_rpc_until_it_resumes(serve):
    server = serve("127.0.0.1", 2101, town="Standin_straight")
    client = standin.Client("127.0.0.1", 2101)
    client.set_timeout(0.02)
    world = client.get_world()
    server.hang()
    for call in (client.get_server_version, world.get_actors, lambda: world.tick(0.02)):
        with pytest.raises(RuntimeError, match="time-out of 20ms"):
            call()
    assert server.tick_timeouts == [0.02]
    server.resume()
    world.tick(0.02)


# --------------------------------------------------------------------------------------------- actors, sensors
def test_spawn_collision_sensor_lane_invasion_and_batch_destroy(serve):
    server = serve("127.0.0.1", 2102, town="Standin_straight")
    client = standin.Client("127.0.0.1", 2102)
    client.set_timeout(0.05)
    world = client.get_world()
    _sync(world)
    lib = world.get_blueprint_library()
    spot = world.get_map().get_spawn_points()[0]
    ego = world.spawn_actor(lib.find("vehicle.lincoln.mkz_2020"), spot)
    assert world.try_spawn_actor(lib.find("vehicle.tesla.model3"), spot) is None  # occupied
    with pytest.raises(RuntimeError, match="collision at spawn position"):
        world.spawn_actor(lib.find("vehicle.tesla.model3"), spot)
    ahead = standin.Transform(standin.Location(spot.location.x + 12.0, spot.location.y, 0.5), spot.rotation)
    parked = world.spawn_actor(lib.find("vehicle.tesla.model3"), ahead)
    hits, invasions = [], []
    col = world.spawn_actor(lib.find("sensor.other.collision"), standin.Transform(), attach_to=ego)
    inv = world.spawn_actor(lib.find("sensor.other.lane_invasion"), standin.Transform(), attach_to=ego)
    col.listen(hits.append)
    inv.listen(invasions.append)
    assert col.parent.id == ego.id and col.is_listening()
    ego.apply_control(standin.VehicleControl(throttle=1.0))
    for _ in range(60):
        world.tick(0.5)
        if hits:
            break
    assert hits and hits[0].actor.id == ego.id and hits[0].other_actor.id == parked.id
    assert hits[0].frame == world.get_snapshot().frame and not invasions
    col.stop()
    assert not col.is_listening()
    responses = client.apply_batch_sync([standin.command.DestroyActor(a) for a in (col, inv, ego, parked)]
                                        + [standin.command.DestroyActor(99999)])
    assert [r.has_error() for r in responses] == [False] * 4 + [True]
    assert server.user_actors() == [] and server.destroyed_while_listening == 1  # `inv` was still listening


def test_steering_and_lane_invasion_in_the_left_handed_frame(serve):
    serve("127.0.0.1", 2103, town="Standin_straight")
    client = standin.Client("127.0.0.1", 2103)
    world = client.get_world()
    _sync(world)
    lib = world.get_blueprint_library()
    wp = world.get_map().get_waypoint(standin.Location(-200.0, 5.25, 0.0))  # E1 (outer eastbound) in CARLA y
    assert wp.lane_id == -2 and wp.get_left_lane().lane_id == -1 and wp.lane_change == standin.LaneChange.Left
    ego = world.spawn_actor(lib.find("vehicle.tesla.model3"), wp.transform)
    events = []
    world.spawn_actor(lib.find("sensor.other.lane_invasion"), standin.Transform(), attach_to=ego).listen(
        events.append)
    ego.set_target_velocity(standin.Vector3D(10.0, 0.0, 0.0))
    ego.apply_control(standin.VehicleControl(throttle=0.3, steer=-0.05))  # negative steer: left in CARLA
    for _ in range(40):
        world.tick(0.5)
    yaw = ego.get_transform().rotation.yaw
    assert yaw < 0.0  # turning left = counter-clockwise seen from above = decreasing CARLA yaw
    assert pose_from_transform(ego.get_transform())[2] > 0.0  # ... and increasing right-handed yaw
    assert events and events[0].crossed_lane_markings[0].type == standin.LaneMarkingType.Broken


def test_traffic_manager_is_bound_to_the_first_client_per_port(serve):
    """The TM port binds on the client side: two worlds sharing a port share one TM bound to the first world,
    whose vehicles alone move; distinct ports drive both."""
    worlds = []
    for port in (2104, 2105):
        serve("127.0.0.1", port, town="Standin_straight")
        client = standin.Client("127.0.0.1", port)
        world = client.get_world()
        _sync(world)
        worlds.append((client, world))

    def drive(tm_ports):
        moved = []
        for (client, world), tm_port in zip(worlds, tm_ports):
            client.get_trafficmanager(tm_port).set_synchronous_mode(True)
            car = world.spawn_actor(world.get_blueprint_library().find("vehicle.tesla.model3"),
                                    world.get_map().get_spawn_points()[5])
            car.set_autopilot(True, tm_port)
            start = car.get_location().x
            for _ in range(20):
                world.tick(0.5)
            moved.append(car.get_location().x - start > 1.0)
            car.destroy()
        return moved

    assert drive((8000, 8000)) == [True, False]
    assert drive((8010, 8011)) == [True, True]


def test_tm_in_async_mode_does_not_drive_a_synchronous_world(serve):
    serve("127.0.0.1", 2106, town="Standin_straight")
    client = standin.Client("127.0.0.1", 2106)
    world = client.get_world()
    _sync(world)
    car = world.spawn_actor(world.get_blueprint_library().find("vehicle.audi.a2"), world.get_map().get_spawn_points()[3])
    car.set_autopilot(True, 8020)
    start = car.get_location().x
    for _ in range(10):
        world.tick(0.5)
    assert car.get_location().x == start
    client.get_trafficmanager(8020).set_synchronous_mode(True)
    for _ in range(10):
        world.tick(0.5)
    assert car.get_location().x > start


def test_batch_spawn_with_autopilot_then(serve):
    server = serve("127.0.0.1", 2107, town="Standin_straight")
    client = standin.Client("127.0.0.1", 2107)
    world = client.get_world()
    bp = world.get_blueprint_library().find("vehicle.tesla.model3")
    points = world.get_map().get_spawn_points()[:3]
    cmd = standin.command
    out = client.apply_batch_sync([cmd.SpawnActor(bp, p).then(cmd.SetAutopilot(cmd.FutureActor, True, 8030))
                                   for p in points + points[:1]])
    assert [r.has_error() for r in out] == [False, False, False, True]  # the last spot is taken
    assert all(server.actors[r.actor_id].autopilot_port == 8030 for r in out[:3])


def test_cameras_report_each_tick_but_not_on_nullrhi_or_muted(serve):
    for port, nullrhi in ((2108, False), (2109, True)):
        server = serve("127.0.0.1", port, town="Standin_straight", nullrhi=nullrhi)
        world = standin.Client("127.0.0.1", port).get_world()
        _sync(world)
        lib = world.get_blueprint_library()
        ego = world.spawn_actor(lib.find("vehicle.tesla.model3"), world.get_map().get_spawn_points()[0])
        bp = lib.find("sensor.camera.rgb")
        bp.set_attribute("image_size_x", "32")
        bp.set_attribute("image_size_y", "16")
        images = []
        cam = world.spawn_actor(bp, standin.Transform(standin.Location(1.5, 0, 2.4)), attach_to=ego)
        cam.listen(images.append)
        world.tick(0.5)
        if nullrhi:
            assert images == []
            continue
        assert len(images) == 1 and len(images[0].raw_data) == 32 * 16 * 4
        server.mute_sensors("sensor.camera.*")
        cam.listen(images.append)
        world.tick(0.5)
        assert len(images) == 1


# ------------------------------------------------------------------------------------------------------- maps
def test_standin_maps_mirror_the_bank_layouts_into_carlas_left_handed_frame():
    from envs.carla.standin.map import standin_map

    carla_map = standin_map("Standin_junction_2x2")
    layout = get_layout("junction_2x2")
    for wp in carla_map.generate_waypoints(10.0):
        lane = layout.lane(wp._l.name)  # the layout lane this waypoint lies on
        pose = pose_from_transform(wp.transform)  # CARLA -> right-handed
        d = np.min(np.linalg.norm(lane.centerline - pose[:2], axis=1))
        assert d < 1.0
    # A lane entering the junction forks into its connectors; the left turn turns counter-clockwise (right-handed).
    end = carla_map.get_waypoint(standin.Location(1.75, 14.0, 0.0))  # S_in0, 1 m before the junction (y = -north)
    branches = end.next(5.0)
    assert len(branches) == 2 and all(b.is_junction for b in branches)
    turns = sorted(
        math.degrees(pose_from_transform(b.next_until_lane_end(2.0)[-1].transform)[2] - pose_from_transform(
            end.transform)[2]) for b in branches)
    assert turns[0] == pytest.approx(0.0, abs=1.0) and turns[1] == pytest.approx(90.0, abs=3.0)
