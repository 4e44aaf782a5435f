func openS3Store(_ settings: StoreSettings) throws -> any ObjectStore {
    throw CNBackupError(.invalidInput, "s3:// stores are not available in this build yet: use a file:// store")
}
