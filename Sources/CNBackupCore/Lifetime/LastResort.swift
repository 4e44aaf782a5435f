import Foundation

/// What must not outlive the process even when it ends at once (a second signal, or a grace
/// period that ran out): private temporary files (a pgpass file, a restore's half-written
/// plaintext), the process groups of running children, and undo actions (dropping a database a
/// restore or drill created and has not finished). Each owner registers while the thing exists
/// and unregisters when it dealt with it itself; `run()` is for the executable's exit path only.
/// Whatever is registered once `run()` has removed things (another thread still working while the
/// process ends) is undone at once instead of waiting for a `run()` that will not come again.
public enum LastResort {
    // @unchecked: everything is only touched under `lock`.
    private final class Registry: @unchecked Sendable {
        let lock = NSLock()
        /// Path -> whether its folder is private to it (made with mkdtemp) and goes too.
        var files: [String: Bool] = [:]
        var processGroups: Set<Int32> = []
        /// Whole private folders (a drill's throwaway PostgreSQL data directory), removed with what they hold.
        var directories: Set<String> = []
        /// Key -> an undo action, run after children are killed and before files go (so an action
        /// can still use a pgpass file registered here).
        var actions: [String: @Sendable () -> Void] = [:]
        /// Set once `run()` has taken what was registered: later registrations are undone at once.
        var finished = false
    }
    private static let registry = Registry()

    /// Registers under the lock, or, once `run()` finished, returns false so the caller undoes now.
    private static func add(_ body: (Registry) -> Void) -> Bool {
        registry.lock.lock(); defer { registry.lock.unlock() }
        if registry.finished { return false }
        body(registry)
        return true
    }

    package static func register(file path: String, inPrivateFolder: Bool = false) {
        if !add({ $0.files[path] = inPrivateFolder }) { removeFile(path, inPrivateFolder: inPrivateFolder) }
    }
    package static func unregister(file path: String) {
        registry.lock.lock(); registry.files[path] = nil; registry.lock.unlock()
    }
    package static func register(directory path: String) {
        if !add({ $0.directories.insert(path) }) { try? FileManager.default.removeItem(atPath: path) }
    }
    package static func unregister(directory path: String) {
        registry.lock.lock(); registry.directories.remove(path); registry.lock.unlock()
    }
    package static func register(processGroup: Int32) {
        if !add({ $0.processGroups.insert(processGroup) }) { _ = kill(-processGroup, SIGKILL) }
    }
    package static func unregister(processGroup: Int32) {
        registry.lock.lock(); registry.processGroups.remove(processGroup); registry.lock.unlock()
    }
    /// `action` runs if the process ends at once while it is registered. It must bound its own
    /// time (a connect timeout, a statement timeout): the process waits for it before it exits.
    package static func register(action key: String, _ action: @escaping @Sendable () -> Void) {
        if !add({ $0.actions[key] = action }) { action() }
    }
    package static func unregister(action key: String) {
        registry.lock.lock(); registry.actions[key] = nil; registry.lock.unlock()
    }

    /// Kills every registered process group, runs the undo actions, then removes every registered
    /// folder and file (and a file's folder, when that was made for it alone). Safe to call from
    /// any thread, just before `_exit`.
    public static func run() {
        registry.lock.lock()
        let groups = registry.processGroups, actions = registry.actions
        registry.processGroups.removeAll(); registry.actions.removeAll()
        registry.lock.unlock()
        for group in groups { _ = kill(-group, SIGKILL) }
        // Actions may start children (dropdb) and use files still registered (its pgpass file).
        for key in actions.keys.sorted() { actions[key]!() }
        registry.lock.lock()
        registry.finished = true
        let files = registry.files, directories = registry.directories, late = registry.processGroups
        registry.files.removeAll(); registry.directories.removeAll(); registry.processGroups.removeAll()
        registry.lock.unlock()
        for group in late { _ = kill(-group, SIGKILL) }
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
        for (path, inPrivateFolder) in files { removeFile(path, inPrivateFolder: inPrivateFolder) }
    }

    private static func removeFile(_ path: String, inPrivateFolder: Bool) {
        unlink(path)
        if inPrivateFolder { rmdir((path as NSString).deletingLastPathComponent) }
    }

    /// The files registered now (for tests).
    package static var registeredFiles: Set<String> {
        registry.lock.lock(); defer { registry.lock.unlock() }
        return Set(registry.files.keys)
    }
}
