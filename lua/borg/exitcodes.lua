-- borg's exit codes, legacy and modern.
--
-- borg 1.2 (and 2.0.0b5) exit with 0 (success), 1 (warning) or 2 (error),
-- and name the error class only in the msgid of its --log-json record.
-- borg 1.4 with BORG_EXIT_CODES=modern, and borg 2 from 2.0.0b9 by
-- default, give each error class its own code from 3 to 99 and each
-- warning class one from 100 to 127. This module maps both kinds to the
-- same outcome, so an error object has the same kind and msgid whichever
-- borg ran. 128 + N means that signal N ended borg, as before.
-- The table follows the "Message IDs" list of borg's frontends document
-- (docs/internals/frontends.rst, borg master of 2025).

local exitcodes = {}

-- Modern error codes and the msgid that borg 1.2 gives the same error.
local ERROR_MSGIDS = {
  [3] = "CancelledByUser",
  [4] = "CommandError",
  [5] = "PlaceholderError",
  [6] = "InvalidPlaceholder",
  [10] = "Repository.AlreadyExists",
  [11] = "Repository.AtticRepository",
  [12] = "Repository.CheckNeeded",
  [13] = "Repository.DoesNotExist",
  [14] = "Repository.InsufficientFreeSpaceError",
  [15] = "Repository.InvalidRepository",
  [16] = "Repository.InvalidRepositoryConfig",
  [17] = "Repository.ObjectNotFound",
  [18] = "Repository.ParentPathDoesNotExist",
  [19] = "Repository.PathAlreadyExists",
  [20] = "Repository.StorageQuotaExceeded",
  [21] = "Repository.PathPermissionDenied",
  [25] = "MandatoryFeatureUnsupported",
  [26] = "NoManifestError",
  [27] = "UnsupportedManifestError",
  [30] = "Archive.AlreadyExists",
  [31] = "Archive.DoesNotExist",
  [32] = "Archive.IncompatibleFilesystemEncodingError",
  [40] = "KeyfileInvalidError",
  [41] = "KeyfileMismatchError",
  [42] = "KeyfileNotFoundError",
  [43] = "NotABorgKeyFile",
  [44] = "RepoKeyNotFoundError",
  [45] = "RepoIdMismatch",
  [46] = "UnencryptedRepo",
  [47] = "UnknownKeyType",
  [48] = "UnsupportedPayloadError",
  [49] = "UnsupportedKeyFormatError",
  [50] = "NoPassphraseFailure",
  [51] = "PasscommandFailure",
  [52] = "PassphraseWrong",
  [53] = "PasswordRetriesExceeded",
  [60] = "Cache.CacheInitAbortedError",
  [61] = "Cache.EncryptionMethodMismatch",
  [62] = "Cache.RepositoryAccessAborted",
  [63] = "Cache.RepositoryIDNotUnique",
  [64] = "Cache.RepositoryReplay",
  [70] = "LockError",
  [71] = "LockErrorT",
  [72] = "LockFailed",
  [73] = "LockTimeout",
  [74] = "NotLocked",
  [75] = "NotMyLock",
  [80] = "ConnectionClosed",
  [81] = "ConnectionClosedWithHint",
  [82] = "InvalidRPCMethod",
  [83] = "PathNotAllowed",
  [84] = "RemoteRepository.RPCServerOutdated",
  [85] = "UnexpectedRPCDataFormatFromClient",
  [86] = "UnexpectedRPCDataFormatFromServer",
  [87] = "ConnectionBrokenWithHint",
  [90] = "IntegrityError",
  [91] = "FileIntegrityError",
  [92] = "DecompressionError",
}

-- Modern warning codes and the class borg names them after.
local WARNING_CLASSES = {
  [100] = "FileChangedWarning",
  [101] = "IncludePatternNeverMatchedWarning",
  [102] = "BackupError",
  [103] = "BackupRaceConditionError",
  [104] = "BackupOSError",
  [105] = "BackupPermissionError",
  [106] = "BackupIOError",
  [107] = "BackupFileNotFoundError",
  [108] = "BackupSymlinkParentError",
  [109] = "BackupPathTraversalError",
  [110] = "BackupHardlinkSourceError",
  [111] = "BackupTimeoutError",
  [112] = "BackupBrokenSymlinkError",
}

-- Return "ok", "warning" or "error" for exit status rc (not a signal).
function exitcodes.severity(rc)
  if rc == 0 then
    return "ok"
  elseif rc == 1 or (rc >= 100 and rc <= 127) then
    return "warning"
  end
  return "error"
end

-- Return the msgid of a modern error code, or nil for 2 and codes borg
-- does not assign.
function exitcodes.msgid(rc)
  return ERROR_MSGIDS[rc]
end

-- Return the warning class of a modern warning code, or nil.
function exitcodes.warning_class(rc)
  return WARNING_CLASSES[rc]
end

return exitcodes
