using System;

namespace InitramfsPS.Errors
{
    /// <summary>What kind of failure an <see cref="InitramfsException"/> reports; cmdlets map it to an ErrorCategory.</summary>
    public enum FailureKind
    {
        /// <summary>A parameter or reference the user gave cannot be used.</summary>
        InvalidArgument,
        /// <summary>A file, image, tag, blob or entry does not exist.</summary>
        NotFound,
        /// <summary>Bytes do not match their digest, size or format.</summary>
        InvalidData,
        /// <summary>A valid input that this version does not handle.</summary>
        NotImplemented,
        /// <summary>An entry tried to leave the rootfs or otherwise break confinement.</summary>
        Security,
        /// <summary>A limit (layer size, entry count, archive field width) was exceeded.</summary>
        LimitExceeded,
        /// <summary>The archive or cache could not be written.</summary>
        WriteFailed,
        /// <summary>The rootfs is not bootable as asked.</summary>
        NotBootable,
        /// <summary>The host refused access to a file or directory.</summary>
        AccessDenied,
        /// <summary>A host file or directory could not be read.</summary>
        ReadFailed,
        /// <summary>The host file system failed in a way that is neither of the above.</summary>
        HostFailed,
    }

    /// <summary>
    /// The one exception type the core throws for failures a user can cause. It carries a stable
    /// error id so scripts and tests can tell failures apart without parsing messages.
    /// </summary>
    public sealed class InitramfsException : Exception
    {
        /// <summary>Creates an exception with a stable id, a kind and a message.</summary>
        public InitramfsException(string errorId, FailureKind kind, string message, object? target = null, Exception? inner = null)
            : base(message, inner)
        {
            ErrorId = errorId;
            Kind = kind;
            Target = target;
        }

        /// <summary>Stable identifier, e.g. <c>LayerEntryOutsideRoot</c>.</summary>
        public string ErrorId { get; }

        /// <summary>The kind of failure.</summary>
        public FailureKind Kind { get; }

        /// <summary>What the failure is about (a path, a reference, a digest).</summary>
        public object? Target { get; }

        /// <summary>
        /// Bytes read at use do not match what was verified when they entered the module (CacheCorrupt,
        /// LayerContentChanged, ArchiveChanged). Code that turns a failed read into a finding or a
        /// fallback (the inspector, the /init checks) lets such a failure through: nothing may be
        /// concluded from bytes that are not the verified ones.
        /// </summary>
        public bool ContentMismatch { get; init; }
    }
}
