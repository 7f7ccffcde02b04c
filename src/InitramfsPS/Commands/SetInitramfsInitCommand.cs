using System.IO;
using System.Management.Automation;
using System.Text;
using InitramfsPS.Errors;

namespace InitramfsPS.Commands
{
    /// <summary>Sets /init, the program the kernel runs first, from a host script or from text.</summary>
    [Cmdlet(VerbsCommon.Set, "InitramfsInit", DefaultParameterSetName = ContentSet)]
    [OutputType(typeof(Rootfs))]
    public sealed class SetInitramfsInitCommand : RootfsCmdlet
    {
        private const string PathSet = "Path";
        private const string ContentSet = "Content";

        /// <summary>A host file to use as /init (its bytes are taken as they are).</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = null!;

        /// <summary>The text of /init; CRLF line ends become LF, since the kernel would read "sh\r" as the interpreter.</summary>
        [Parameter(Mandatory = true, ParameterSetName = ContentSet)]
        [ValidateNotNullOrEmpty]
        public string Content { get; set; } = null!;

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            Guard("/init", () =>
            {
                Content? content;
                long mtime = 0;
                string source;
                if (ParameterSetName == PathSet)
                {
                    string host = GetUnresolvedProviderPathFromPSPath(Path);
                    var info = new FileInfo(host);
                    if (!info.Exists)
                    {
                        throw new InitramfsException("HostFileNotFound", FailureKind.NotFound, $"The init script '{host}' does not exist.", host);
                    }
                    content = new HostFileContent(info.FullName, info.Length);
                    mtime = info.LastWriteTimeUtc.ToUnixSeconds();
                    source = "host:" + info.FullName;
                }
                else
                {
                    content = new InlineContent(Encoding.UTF8.GetBytes(Content.Replace("\r\n", "\n", System.StringComparison.Ordinal)));
                    source = "generated";
                }
                var rootfs = RootfsToChange();
                if (rootfs is null)
                {
                    return;
                }
                if (rootfs.GetEntry("/init")?.Type == EntryType.Directory)
                {
                    throw new InitramfsException("InitIsDirectory", FailureKind.InvalidArgument,
                        "/init is a directory in this rootfs; remove it before setting an init.", "/init");
                }
                rootfs.Set(new RootfsEntry
                {
                    Path = "/init",
                    Type = EntryType.File,
                    Mode = 0x1ED,
                    MTime = mtime,
                    Size = content.Length,
                    Content = content,
                    Source = source,
                }, null);
                rootfs.Changes.Add("set /init from " + source);
                WriteObject(rootfs);
            });
        }
    }
}
