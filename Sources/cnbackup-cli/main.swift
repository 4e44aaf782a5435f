import CNBackup
import Foundation
import CNBackupCore
import CNBackupStorage

// Key material lives in this process's memory: no core dump, no reading it from outside.
makeUndumpable()
useFlatMemoryAllocation()
ignoreBrokenPipes()
StopSignals.install()
CNBackupCommand.main()
