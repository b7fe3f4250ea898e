import Dispatch
import Synchronization
import Testing
import VMM
@testable import API

/// The API before the machine exists: it answers from the configuration, changes it through the
/// same setters as the command line, and hands a start to the VMM thread.
@Suite struct ControlPlaneTests {
    @Test func beforeTheStartTheRoutesSeeTheConfiguration() {
        let control = ControlPlane(resources: MachineResources())
        let routes = APIRoutes(control: control)
        #expect(routes.handle(method: "GET", path: "/", body: []).body.contains(#""state":"Not started""#))
        let set = routes.handle(method: "PUT", path: "/machine-config", body: Array(#"{"vcpu_count": 2, "mem_size_mib": 256}"#.utf8))
        #expect(set == .noContent, "\(set.body)")
        #expect(routes.handle(method: "GET", path: "/machine-config", body: []).body
            == #"{"mem_size_mib":256,"smt":false,"track_dirty_pages":false,"vcpu_count":2}"#)
        let bad = routes.handle(method: "PATCH", path: "/machine-config", body: Array(#"{"vcpu_count": 0}"#.utf8))
        #expect(bad.status == 400 && bad.body.contains("0 vCPUs requested"), "\(bad.body)")
        let unknown = routes.handle(method: "PATCH", path: "/machine-config", body: Array(#"{"vcpus": 3}"#.utf8))
        #expect(unknown.status == 400 && unknown.body.contains("unknown field 'vcpus'"), "\(unknown.body)")
        let balloon = routes.handle(method: "PATCH", path: "/balloon", body: Array(#"{"amount_mib": 1}"#.utf8))
        #expect(balloon.status == 400 && balloon.body.contains("not supported before starting the microVM"), "\(balloon.body)")
        #expect(routes.handle(method: "GET", path: "/nothing", body: []).status == 404)
    }

    /// PUT /drives/{id} before the start adds a disk, and again with the same id replaces it.
    @Test func drivesArePutBeforeTheStart() {
        let control = ControlPlane(resources: MachineResources())
        let routes = APIRoutes(control: control)
        let put = { (path: String, body: String) in routes.handle(method: "PUT", path: path, body: Array(body.utf8)) }
        #expect(put("/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "/a.img", "is_root_device": true, "is_read_only": false}"#) == .noContent)
        #expect(put("/drives/rootfs", #"{"drive_id": "rootfs", "path_on_host": "/b.img", "is_root_device": true, "is_read_only": true}"#) == .noContent)
        #expect(control.resources.drives.map(\.options.path) == ["/b.img"])
        #expect(control.resources.drives.first?.options.readOnly == true)
        let mismatch = put("/drives/data", #"{"drive_id": "other", "path_on_host": "/c.img", "is_root_device": false}"#)
        #expect(mismatch.status == 400 && mismatch.body.contains("is not the path's 'data'"), "\(mismatch.body)")
        let twice = put("/drives/data", #"{"drive_id": "data", "path_on_host": "/b.img", "is_root_device": false}"#)
        #expect(twice.status == 400 && twice.body.contains("given twice"), "\(twice.body)")
        #expect(put("/drives/", #"{}"#).status == 404)
    }

    /// PUT /network-interfaces/{id} before the start adds a NIC; the same id replaces it; GET
    /// /vm/config shows it as Firecracker's NetworkInterface.
    @Test func networkInterfacesArePutBeforeTheStart() {
        let control = ControlPlane(resources: MachineResources())
        let routes = APIRoutes(control: control)
        let put = { (path: String, body: String) in routes.handle(method: "PUT", path: path, body: Array(body.utf8)) }
        #expect(put("/network-interfaces/eth0", #"{"iface_id": "eth0", "host_dev_name": "tap0"}"#) == .noContent)
        #expect(put("/network-interfaces/eth0", #"{"iface_id": "eth0", "host_dev_name": "tap1", "guest_mac": "06:00:0a:00:02:0f"}"#) == .noContent)
        #expect(control.resources.networkInterfaces.map(\.options.tap) == ["tap1"])
        let config = routes.handle(method: "GET", path: "/vm/config", body: []).body
        #expect(config.contains(#""network-interfaces":[{"guest_mac":"06:00:0a:00:02:0f","host_dev_name":"tap1","iface_id":"eth0"}]"#), "\(config)")
        let mismatch = put("/network-interfaces/eth1", #"{"iface_id": "eth0", "host_dev_name": "tap2"}"#)
        #expect(mismatch.status == 400 && mismatch.body.contains("is not the path's 'eth1'"), "\(mismatch.body)")
        let twice = put("/network-interfaces/eth1", #"{"iface_id": "eth1", "host_dev_name": "tap1"}"#)
        #expect(twice.status == 400 && twice.body.contains("tap 'tap1' is given twice"), "\(twice.body)")
        let unknown = put("/network-interfaces/eth1", #"{"iface_id": "eth1", "host_dev_name": "tap2", "mtu": 9000}"#)
        #expect(unknown.status == 400 && unknown.body.contains("unknown field 'mtu'"), "\(unknown.body)")
        let patch = routes.handle(method: "PATCH", path: "/network-interfaces/eth0", body: Array("{}".utf8))
        #expect(patch.status == 400 && patch.body.contains("rate limiters"), "\(patch.body)")
    }

    @Test func aStartIsHandedToTheThreadThatBuildsTheMachine() throws {
        let control = ControlPlane(resources: MachineResources())
        // Not complete yet: no kernel.
        #expect(throws: ControlError.invalid(.missing("a kernel (boot source)"))) { try control.requestStart() }
        try control.configure { resources throws(ResourcesError) in try resources.setBootSource(kernelPath: "/k") }
        let handed = Mutex<MachineResources?>(nil)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            let resources = control.waitForStart()
            handed.withLock { $0 = resources }
            done.signal()
        }
        try control.requestStart()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(handed.withLock { $0?.kernelPath } == "/k")
        #expect(control.phase == .starting)
        // Once started, the configuration is fixed.
        #expect(throws: ControlError.afterStart) { try control.configure { $0.prefault = true } }
        #expect(throws: ControlError.afterStart) { try control.requestStart() }
        control.attach(FakeBalloon())
        #expect(APIRoutes(control: control).handle(method: "GET", path: "/", body: []).body.contains(#""state":"Running""#))
    }
}
