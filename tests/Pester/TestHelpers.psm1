#Requires -Version 7.4
<#
    TestHelpers.psm1 - helpers for the InitramfsPS Pester tests.

    Builds test inputs with exact control over their bytes (tar streams, OCI image layouts,
    OCI indexes, `docker save` archives, a busybox layer) and reads produced outputs with
    code independent of the module under test (a strict cpio "newc" reader, a directory
    tree lister, a QEMU boot runner).

    Pure PowerShell/.NET plus the Debian CLI tools of the test rig: GNU tar, zstd, cpio,
    find/stat (coreutils), qemu-system-x86_64, /bin/busybox (busybox-static).

    Byte arrays are returned with Write-Output -NoEnumerate: `$t = New-TestTar ...` is a byte[].
#>

Set-StrictMode -Version 3.0

$script:Utf8 = [System.Text.UTF8Encoding]::new($false)
$script:DefaultMTime = 1700000000L
$script:CpioTypes = @{ 0x8000 = 'File'; 0x4000 = 'Dir'; 0xA000 = 'Symlink'; 0x2000 = 'CharDevice'; 0x6000 = 'BlockDevice'; 0x1000 = 'Fifo'; 0xC000 = 'Socket' }
$script:MediaTypes = @{
    OciManifest     = 'application/vnd.oci.image.manifest.v1+json'
    OciIndex        = 'application/vnd.oci.image.index.v1+json'
    OciConfig       = 'application/vnd.oci.image.config.v1+json'
    OciLayerTar     = 'application/vnd.oci.image.layer.v1.tar'
    OciLayerGzip    = 'application/vnd.oci.image.layer.v1.tar+gzip'
    OciLayerZstd    = 'application/vnd.oci.image.layer.v1.tar+zstd'
    DockerManifest  = 'application/vnd.docker.distribution.manifest.v2+json'
    DockerList      = 'application/vnd.docker.distribution.manifest.list.v2+json'
    DockerConfig    = 'application/vnd.docker.container.image.v1+json'
    DockerLayerTar  = 'application/vnd.docker.image.rootfs.diff.tar'
    DockerLayerGzip = 'application/vnd.docker.image.rootfs.diff.tar.gzip'
    DockerLayerZstd = 'application/vnd.docker.image.rootfs.diff.tar.zstd'
}

#region small internals

function Get-Sha256Hex {
    param([Parameter(Mandatory)][byte[]] $Bytes)
    [System.Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData($Bytes)).ToLowerInvariant()
}

function ConvertTo-ByteArray {
    # Accepts byte[], a string (UTF-8) or $null.
    param($Value)
    if ($null -eq $Value) { return , [byte[]]::new(0) }
    if ($Value -is [byte[]]) { return , $Value }
    if ($Value -is [string]) { return , $script:Utf8.GetBytes($Value) }
    if ($Value -is [System.Collections.IEnumerable]) { return , [byte[]]@($Value) }
    throw "Cannot convert a value of type $($Value.GetType().FullName) to bytes (use a string or byte[])."
}

function ConvertTo-LayerList {
    # A single byte[] bound to an [object[]] parameter arrives as an array of boxed bytes:
    # turn that back into one layer. Strings name tar files on disk.
    param([object[]] $Layer)
    $list = [System.Collections.Generic.List[byte[]]]::new()
    if ($null -eq $Layer -or $Layer.Count -eq 0) { return , $list }
    if ($Layer[0] -is [byte]) { $list.Add([byte[]]$Layer); return , $list }
    foreach ($l in $Layer) {
        if ($l -is [byte[]]) { $list.Add($l) }
        elseif ($l -is [string] -or $l -is [System.IO.FileInfo]) { $list.Add([System.IO.File]::ReadAllBytes([string]"$l")) }
        elseif ($l -is [System.Collections.IEnumerable]) { $list.Add([byte[]]@($l)) }
        else { throw "Layer must be a byte[] (tar) or a path to a tar file, got $($l.GetType().FullName)." }
    }
    , $list
}

function ConvertTo-OctalField {
    # ustar numeric field: (Width-1) zero-padded octal digits then NUL.
    param([long] $Value, [int] $Width, [string] $Field)
    if ($Value -lt 0) { throw "tar field '$Field' cannot hold negative value $Value." }
    $s = [System.Convert]::ToString($Value, 8).PadLeft($Width - 1, '0')
    if ($s.Length -gt $Width - 1) { return $null }    # does not fit
    $script:Utf8.GetBytes($s + "`0")
}

function Get-EntryValue {
    param([System.Collections.IDictionary] $Entry, [string] $Key, $Default = $null)
    foreach ($k in $Entry.Keys) { if ([string]::Equals([string]$k, $Key, [System.StringComparison]::OrdinalIgnoreCase)) { return , $Entry[$k] } }
    , $Default
}

function Test-EntryKey {
    param([System.Collections.IDictionary] $Entry, [string] $Key)
    foreach ($k in $Entry.Keys) { if ([string]::Equals([string]$k, $Key, [System.StringComparison]::OrdinalIgnoreCase)) { return $true } }
    $false
}

function ConvertTo-ModeInt {
    param($Mode)
    if ($Mode -is [string]) { return [System.Convert]::ToInt32($Mode, 8) }
    [int]$Mode
}

function New-PaxData {
    # "LEN key=value\n" records; LEN counts the whole record including itself.
    param([System.Collections.Specialized.OrderedDictionary] $Records)
    $ms = [System.IO.MemoryStream]::new()
    foreach ($k in $Records.Keys) {
        $body = $script:Utf8.GetBytes(" $k=$($Records[$k])`n")
        $len = $body.Length + 1
        while ($true) {
            $total = $body.Length + ([string]$len).Length
            if ($total -eq $len) { break }
            $len = $total
        }
        $rec = $script:Utf8.GetBytes([string]$len)
        $ms.Write($rec, 0, $rec.Length); $ms.Write($body, 0, $body.Length)
    }
    , $ms.ToArray()
}

function Write-TarBlock {
    # Writes one 512-byte header. $Fields: name bytes etc. Returns nothing.
    param(
        [System.IO.Stream] $Stream,
        [byte[]] $NameBytes, [byte[]] $PrefixBytes, [int] $Mode, [long] $Uid, [long] $Gid,
        [long] $Size, [long] $MTime, [char] $TypeFlag, [byte[]] $LinkBytes,
        [byte[]] $UNameBytes, [byte[]] $GNameBytes, [long] $DevMajor, [long] $DevMinor,
        $RawChecksum
    )
    $h = [byte[]]::new(512)
    [Array]::Copy($NameBytes, 0, $h, 0, [Math]::Min($NameBytes.Length, 100))
    $put = {
        param([int] $Offset, [int] $Width, [long] $Value, [string] $Field)
        $b = ConvertTo-OctalField -Value $Value -Width $Width -Field $Field
        if ($null -eq $b) { throw "tar field '$Field' cannot hold $Value in $($Width - 1) octal digits." }
        [Array]::Copy($b, 0, $h, $Offset, $b.Length)
    }
    & $put 100 8 $Mode 'mode'
    & $put 108 8 $Uid 'uid'
    & $put 116 8 $Gid 'gid'
    & $put 124 12 $Size 'size'
    & $put 136 12 $MTime 'mtime'
    $h[156] = [byte]$TypeFlag
    if ($null -ne $LinkBytes -and $LinkBytes.Length -gt 0) { [Array]::Copy($LinkBytes, 0, $h, 157, [Math]::Min($LinkBytes.Length, 100)) }
    $magic = $script:Utf8.GetBytes("ustar`0" + '00')
    [Array]::Copy($magic, 0, $h, 257, 8)
    if ($null -ne $UNameBytes -and $UNameBytes.Length -gt 0) { [Array]::Copy($UNameBytes, 0, $h, 265, [Math]::Min($UNameBytes.Length, 31)) }
    if ($null -ne $GNameBytes -and $GNameBytes.Length -gt 0) { [Array]::Copy($GNameBytes, 0, $h, 297, [Math]::Min($GNameBytes.Length, 31)) }
    & $put 329 8 $DevMajor 'devmajor'
    & $put 337 8 $DevMinor 'devminor'
    if ($null -ne $PrefixBytes -and $PrefixBytes.Length -gt 0) { [Array]::Copy($PrefixBytes, 0, $h, 345, [Math]::Min($PrefixBytes.Length, 155)) }
    # checksum: sum of all bytes with the checksum field taken as spaces
    for ($i = 148; $i -lt 156; $i++) { $h[$i] = 0x20 }
    $sum = 0L
    foreach ($b in $h) { $sum += $b }
    if ($null -ne $RawChecksum) { $sum = [long]$RawChecksum }
    $ck = $script:Utf8.GetBytes([System.Convert]::ToString($sum, 8).PadLeft(6, '0'))
    if ($ck.Length -gt 6) { $ck = $ck[($ck.Length - 6)..($ck.Length - 1)] }
    [Array]::Copy($ck, 0, $h, 148, 6)
    $h[154] = 0; $h[155] = 0x20
    $Stream.Write($h, 0, 512)
}

function Write-TarPadding {
    param([System.IO.Stream] $Stream, [long] $Length)
    $rem = $Length % 512
    if ($rem -ne 0) { $Stream.Write([byte[]]::new(512 - $rem), 0, 512 - $rem) }
}

function Split-UstarName {
    # Returns @(prefixBytes, nameBytes) or $null when the name cannot be stored in ustar fields.
    param([byte[]] $Bytes)
    if ($Bytes.Length -le 100) { return @(, @([byte[]]::new(0), $Bytes)) }
    if ($Bytes.Length -gt 256) { return $null }
    # split at a '/' with 1 <= prefix <= 155 and 1 <= name <= 100 (longest prefix that fits)
    for ($i = [Math]::Min(155, $Bytes.Length - 2); $i -ge 1; $i--) {
        if ($Bytes[$i] -ne 0x2F) { continue }
        $nameLen = $Bytes.Length - $i - 1
        if ($nameLen -lt 1) { continue }
        if ($nameLen -gt 100) { return $null }
        $prefix = [byte[]]::new($i); [Array]::Copy($Bytes, 0, $prefix, 0, $i)
        $name = [byte[]]::new($nameLen); [Array]::Copy($Bytes, $i + 1, $name, 0, $nameLen)
        return @(, @($prefix, $name))
    }
    $null
}

function Invoke-NativeChecked {
    # Runs a native command, throws with its stderr when the exit code is not 0.
    param([Parameter(Mandatory)][string] $FilePath, [string[]] $ArgumentList = @(), [switch] $PassThru)
    $psi = [System.Diagnostics.ProcessStartInfo]::new($FilePath)
    foreach ($a in $ArgumentList) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.RedirectStandardInput = $true
    $psi.UseShellExecute = $false
    $p = [System.Diagnostics.Process]::Start($psi)
    $p.StandardInput.Close()
    $outTask = $p.StandardOutput.ReadToEndAsync()
    $errTask = $p.StandardError.ReadToEndAsync()
    $p.WaitForExit()
    $out = $outTask.GetAwaiter().GetResult(); $err = $errTask.GetAwaiter().GetResult()
    if ($p.ExitCode -ne 0) {
        throw "'$FilePath $($ArgumentList -join ' ')' failed with exit code $($p.ExitCode): $err"
    }
    if ($PassThru) { [pscustomobject]@{ ExitCode = $p.ExitCode; StdOut = $out; StdErr = $err } }
}

function Write-JsonBlob {
    # Serialises $Object as compact JSON, writes it as a blob, returns @{Digest; Size; Bytes}.
    param([string] $LayoutPath, $Object, [string] $Json)
    if (-not $Json) { $Json = ConvertTo-Json -InputObject $Object -Depth 32 -Compress }
    $bytes = $script:Utf8.GetBytes($Json)
    Write-Blob -LayoutPath $LayoutPath -Bytes $bytes
}

function Write-Blob {
    param([string] $LayoutPath, [byte[]] $Bytes)
    $hex = Get-Sha256Hex $Bytes
    $dir = Join-Path $LayoutPath 'blobs/sha256'
    [void][System.IO.Directory]::CreateDirectory($dir)
    [System.IO.File]::WriteAllBytes((Join-Path $dir $hex), $Bytes)
    [pscustomobject]@{ Digest = "sha256:$hex"; Size = [long]$Bytes.Length }
}

function Initialize-OciLayoutDirectory {
    param([string] $LayoutPath)
    [void][System.IO.Directory]::CreateDirectory((Join-Path $LayoutPath 'blobs/sha256'))
    $ol = Join-Path $LayoutPath 'oci-layout'
    if (-not (Test-Path -LiteralPath $ol)) {
        [System.IO.File]::WriteAllText($ol, '{"imageLayoutVersion":"1.0.0"}', $script:Utf8)
    }
}

function Set-OciIndexTag {
    # Adds $Descriptor (ordered dict) to index.json, replacing any entry with the same ref.name.
    param([string] $LayoutPath, [string] $Tag, [System.Collections.IDictionary] $Descriptor)
    $indexPath = Join-Path $LayoutPath 'index.json'
    $manifests = [System.Collections.Generic.List[object]]::new()
    $extra = [ordered]@{}
    if (Test-Path -LiteralPath $indexPath) {
        $old = Get-Content -LiteralPath $indexPath -Raw | ConvertFrom-Json -AsHashtable -DateKind String
        foreach ($k in $old.Keys) { if ($k -notin 'schemaVersion', 'mediaType', 'manifests') { $extra[$k] = $old[$k] } }
        if ($old.ContainsKey('manifests') -and $null -ne $old['manifests']) {
            foreach ($m in $old['manifests']) {
                $ref = $null
                if ($m.ContainsKey('annotations') -and $null -ne $m['annotations']) { $ref = $m['annotations']['org.opencontainers.image.ref.name'] }
                if ($ref -ne $Tag) { $manifests.Add($m) }
            }
        }
    }
    $Descriptor['annotations'] = [ordered]@{ 'org.opencontainers.image.ref.name' = $Tag }
    $manifests.Add($Descriptor)
    $index = [ordered]@{
        schemaVersion = 2
        mediaType     = $script:MediaTypes.OciIndex
        manifests     = $manifests.ToArray()
    }
    foreach ($k in $extra.Keys) { $index[$k] = $extra[$k] }
    [System.IO.File]::WriteAllText($indexPath, (ConvertTo-Json -InputObject $index -Depth 32), $script:Utf8)
}

function Compress-LayerBytes {
    param([byte[]] $Bytes, [string] $Compression)
    switch ($Compression) {
        'none' { return , $Bytes }
        'gzip' {
            $ms = [System.IO.MemoryStream]::new()
            $gz = [System.IO.Compression.GZipStream]::new($ms, [System.IO.Compression.CompressionLevel]::Optimal, $true)
            $gz.Write($Bytes, 0, $Bytes.Length); $gz.Dispose()
            return , $ms.ToArray()
        }
        'zstd' {
            $in = [System.IO.Path]::GetTempFileName(); $out = "$in.zst"
            try {
                [System.IO.File]::WriteAllBytes($in, $Bytes)
                Invoke-NativeChecked zstd @('-q', '-f', '-19', '-o', $out, $in)
                return , [System.IO.File]::ReadAllBytes($out)
            }
            finally { Remove-Item -LiteralPath $in, $out -Force -ErrorAction SilentlyContinue }
        }
        default { throw "Unknown compression '$Compression' (gzip, zstd, none)." }
    }
}

function New-ImageConfigObject {
    param([System.Collections.IDictionary] $Config, [string] $Architecture, [string] $Os, [string] $Variant, [string[]] $DiffIds)
    $cfg = [ordered]@{}
    if ($Config) {
        foreach ($k in $Config.Keys) {
            $v = $Config[$k]
            if ($k -in 'Entrypoint', 'Cmd', 'Env' -and $null -ne $v) { $v = [string[]]@($v) }
            $cfg[[string]$k] = $v
        }
    }
    $o = [ordered]@{
        created      = '2023-11-14T22:13:20Z'
        architecture = $Architecture
        os           = $Os
    }
    if ($Variant) { $o['variant'] = $Variant }
    $o['config'] = $cfg
    $o['rootfs'] = [ordered]@{ type = 'layers'; diff_ids = [string[]]@($DiffIds) }
    $o['history'] = @(foreach ($d in $DiffIds) { [ordered]@{ created = '2023-11-14T22:13:20Z'; created_by = 'InitramfsPS TestHelpers' } })
    $o
}

#endregion

function New-TestTar {
    <#
    .SYNOPSIS
    Writes a tar stream (POSIX ustar, PAX where needed) with exactly the given entries, in the given order.
    .DESCRIPTION
    Each -Entry hashtable (keys are case-insensitive):
      Name       string, written verbatim ('./a', '/a', 'a/../b' and trailing '/' all kept). Required.
      Type       File (default), Dir, Symlink, Hardlink, CharDevice, BlockDevice, Fifo.
      Mode       permission bits incl. setuid/setgid/sticky. An int (0x1ED, 493,
                 [Convert]::ToInt32('4755',8)) or an OCTAL STRING ('4755', '0644'). Beware: the
                 PowerShell literal 0755 is DECIMAL 755; write '0755' or 0x1ED. Type bits are masked off.
                 Default 0644 for File/devices/Fifo/Hardlink, 0755 for Dir, 0777 for Symlink.
      Uid, Gid   numbers (default 0). Values above 2097151 go in a PAX header.
      UName, GName  optional owner names (empty by default).
      MTime      unix seconds (default 1700000000).
      Data       string (UTF-8) or byte[]; normally File only (a non-File entry with Data gets a
                 non-zero size: a hostile input).
      LinkName   target of a Symlink/Hardlink.
      DevMajor, DevMinor  device numbers (CharDevice/BlockDevice; default 0).
      Pax        hashtable key -> value: an explicit PAX 'x' header before this entry (merged with,
                 and overriding, any automatic path/linkpath record). Values are written verbatim,
                 so @{ size = '999' } or @{ path = '../../etc/passwd' } make hostile inputs.
                 Use [ordered]@{} when the record order matters.
      RawChecksum  int written in the checksum field instead of the correct sum (malformed input).
      Size       int written in the size field instead of the data length (data still written
                 as given and padded: a malformed input).
      TypeFlag   a raw type flag character overriding Type (e.g. 'L', 'g', 'Z').
    Names over 100 bytes use the ustar prefix field when they split at a '/', else a PAX path
    record; link targets over 100 bytes use a PAX linkpath record.
    .OUTPUTS
    byte[] (or nothing with -OutFile, unless -PassThru, which then returns the FileInfo).
    #>
    [CmdletBinding()]
    [OutputType([byte[]])]
    param(
        [Parameter(Mandatory, Position = 0)][AllowEmptyCollection()][System.Collections.IDictionary[]] $Entry,
        [switch] $NoEndBlocks,
        [string] $OutFile,
        [switch] $PassThru
    )
    $typeFlags = @{ File = '0'; Hardlink = '1'; Symlink = '2'; CharDevice = '3'; BlockDevice = '4'; Dir = '5'; Fifo = '6' }
    $defaultModes = @{ File = 420; Hardlink = 420; Symlink = 511; CharDevice = 420; BlockDevice = 420; Dir = 493; Fifo = 420 }
    $ms = [System.IO.MemoryStream]::new()
    $paxSerial = 0
    foreach ($e in $Entry) {
        $name = [string](Get-EntryValue $e 'Name')
        if ([string]::IsNullOrEmpty($name)) { throw 'Every tar entry needs a Name.' }
        $type = [string](Get-EntryValue $e 'Type' 'File')
        if (-not $typeFlags.ContainsKey($type)) { throw "Unknown tar entry Type '$type' for '$name' (File, Dir, Symlink, Hardlink, CharDevice, BlockDevice, Fifo)." }
        $type = ($typeFlags.Keys | Where-Object { $_ -eq $type })   # canonical casing
        $flag = [char]$typeFlags[$type]
        $rawFlag = Get-EntryValue $e 'TypeFlag'
        if ($null -ne $rawFlag) { $flag = [char]([string]$rawFlag)[0] }
        $mode = if (Test-EntryKey $e 'Mode') { ConvertTo-ModeInt (Get-EntryValue $e 'Mode') } else { $defaultModes[$type] }
        $uid = [long](Get-EntryValue $e 'Uid' 0)
        $gid = [long](Get-EntryValue $e 'Gid' 0)
        $mtime = [long](Get-EntryValue $e 'MTime' $script:DefaultMTime)
        $data = ConvertTo-ByteArray (Get-EntryValue $e 'Data')
        $link = [string](Get-EntryValue $e 'LinkName' '')
        $uname = [string](Get-EntryValue $e 'UName' '')
        $gname = [string](Get-EntryValue $e 'GName' '')
        $major = [long](Get-EntryValue $e 'DevMajor' 0)
        $minor = [long](Get-EntryValue $e 'DevMinor' 0)
        $size = [long]$data.Length
        if (Test-EntryKey $e 'Size') { $size = [long](Get-EntryValue $e 'Size') }

        $pax = [ordered]@{}
        $nameBytes = $script:Utf8.GetBytes($name)
        $split = Split-UstarName $nameBytes
        if ($null -eq $split) {
            $pax['path'] = $name
            $prefixBytes = [byte[]]::new(0)
            $nameField = $nameBytes   # truncated to 100 by the header writer
        }
        else { $prefixBytes = $split[0]; $nameField = $split[1] }
        $linkBytes = $script:Utf8.GetBytes($link)
        if ($linkBytes.Length -gt 100) { $pax['linkpath'] = $link }
        if ($script:Utf8.GetByteCount($uname) -gt 31) { $pax['uname'] = $uname }
        if ($script:Utf8.GetByteCount($gname) -gt 31) { $pax['gname'] = $gname }
        $hdrUid = $uid; $hdrGid = $gid; $hdrMTime = $mtime; $hdrSize = $size
        if ($uid -gt 2097151) { $pax['uid'] = [string]$uid; $hdrUid = 0 }
        if ($gid -gt 2097151) { $pax['gid'] = [string]$gid; $hdrGid = 0 }
        if ($mtime -lt 0 -or $mtime -gt 8589934591) { $pax['mtime'] = [string]$mtime; $hdrMTime = 0 }
        if ($size -gt 8589934591) { $pax['size'] = [string]$size; $hdrSize = 0 }
        $explicitPax = Get-EntryValue $e 'Pax'
        if ($explicitPax) { foreach ($k in $explicitPax.Keys) { $pax[[string]$k] = [string]$explicitPax[$k] } }

        if ($pax.Count -gt 0) {
            $paxData = New-PaxData $pax
            $paxSerial++
            $leaf = ($name.TrimEnd('/') -split '/')[-1]
            $paxName = $script:Utf8.GetBytes("PaxHeaders.$paxSerial/$leaf")
            Write-TarBlock -Stream $ms -NameBytes $paxName -PrefixBytes $null -Mode 420 -Uid 0 -Gid 0 `
                -Size $paxData.Length -MTime ([Math]::Max(0L, [Math]::Min($mtime, 8589934591L))) -TypeFlag 'x' -LinkBytes $null `
                -UNameBytes $null -GNameBytes $null -DevMajor 0 -DevMinor 0 -RawChecksum $null
            $ms.Write($paxData, 0, $paxData.Length)
            Write-TarPadding $ms $paxData.Length
        }
        Write-TarBlock -Stream $ms -NameBytes $nameField -PrefixBytes $prefixBytes -Mode ($mode -band 0xFFF) `
            -Uid $hdrUid -Gid $hdrGid -Size $hdrSize -MTime $hdrMTime -TypeFlag $flag -LinkBytes $linkBytes `
            -UNameBytes $script:Utf8.GetBytes($uname) -GNameBytes $script:Utf8.GetBytes($gname) `
            -DevMajor $major -DevMinor $minor -RawChecksum (Get-EntryValue $e 'RawChecksum')
        if ($data.Length -gt 0) {
            $ms.Write($data, 0, $data.Length)
            Write-TarPadding $ms $data.Length
        }
    }
    if (-not $NoEndBlocks) { $ms.Write([byte[]]::new(1024), 0, 1024) }
    $bytes = $ms.ToArray()
    if ($OutFile) {
        $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($OutFile)
        [System.IO.File]::WriteAllBytes($full, $bytes)
        if ($PassThru) { Get-Item -LiteralPath $full }
        return
    }
    Write-Output -NoEnumerate $bytes
}

function New-TestOciLayout {
    <#
    .SYNOPSIS
    Creates (or adds an image to) an OCI image layout from tar byte arrays, tagged in index.json.
    .DESCRIPTION
    -Layer: byte[] tars (New-TestTar output) or paths of tar files; a single byte[] is one layer.
    -Compression gzip (default) | zstd | none; -PerLayerCompression overrides it per layer.
    -Config keys (Entrypoint, Cmd, Env, WorkingDir, User, Labels, ...) go to the config's "config"
    object (Entrypoint/Cmd/Env forced to arrays). -ConfigJson replaces the whole config blob text
    (hostile inputs). -DockerMediaTypes uses the Docker v2 schema 2 media types (manifest, config,
    layers: ...rootfs.diff.tar.gzip / .tar.zstd / .tar); skopeo 1.9's oci: transport cannot read such
    a layout (it skips non-OCI descriptors in index.json), so it only feeds readers of the layout
    itself; to get Docker types into a registry push an OCI layout with `skopeo copy --format v2s2`.
    Blobs are named by their sha256; the config's created/history are fixed (reproducible digests).
    An existing entry in index.json with the same tag is replaced.
    .OUTPUTS
    PSCustomObject: Path, Tag, Reference ("oci:<path>:<tag>"), ManifestDigest, ManifestSize,
    ManifestMediaType, ConfigDigest, ConfigSize, LayerDigests, LayerSizes, LayerMediaTypes, DiffIds,
    Platform (hashtable os/architecture[/variant]).
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory, Position = 0)][string] $Path,
        [Parameter(Mandatory)][AllowEmptyCollection()][object[]] $Layer,
        [ValidateSet('gzip', 'zstd', 'none')][string] $Compression = 'gzip',
        [ValidateSet('gzip', 'zstd', 'none')][string[]] $PerLayerCompression,
        [string] $Tag = 'test',
        [System.Collections.IDictionary] $Config,
        [string] $ConfigJson,
        [string] $Architecture = 'amd64',
        [string] $Os = 'linux',
        [string] $Variant,
        [switch] $DockerMediaTypes
    )
    $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    Initialize-OciLayoutDirectory $full
    $layers = ConvertTo-LayerList $Layer
    if ($PerLayerCompression -and $PerLayerCompression.Count -ne $layers.Count) {
        throw "-PerLayerCompression has $($PerLayerCompression.Count) values for $($layers.Count) layers."
    }
    $diffIds = [System.Collections.Generic.List[string]]::new()
    $layerDescs = [System.Collections.Generic.List[object]]::new()
    for ($i = 0; $i -lt $layers.Count; $i++) {
        $tar = $layers[$i]
        $comp = if ($PerLayerCompression) { $PerLayerCompression[$i] } else { $Compression }
        $diffIds.Add('sha256:' + (Get-Sha256Hex $tar))
        $blob = Compress-LayerBytes -Bytes $tar -Compression $comp
        $w = Write-Blob -LayoutPath $full -Bytes $blob
        $mt = if ($DockerMediaTypes) {
            @{ gzip = $script:MediaTypes.DockerLayerGzip; zstd = $script:MediaTypes.DockerLayerZstd; none = $script:MediaTypes.DockerLayerTar }[$comp]
        }
        else {
            @{ gzip = $script:MediaTypes.OciLayerGzip; zstd = $script:MediaTypes.OciLayerZstd; none = $script:MediaTypes.OciLayerTar }[$comp]
        }
        $layerDescs.Add([ordered]@{ mediaType = $mt; digest = $w.Digest; size = $w.Size })
    }
    $platform = [ordered]@{ architecture = $Architecture; os = $Os }
    if ($Variant) { $platform['variant'] = $Variant }

    $cfgObj = New-ImageConfigObject -Config $Config -Architecture $Architecture -Os $Os -Variant $Variant -DiffIds $diffIds.ToArray()
    $cfgBlob = Write-JsonBlob -LayoutPath $full -Object $cfgObj -Json $ConfigJson
    $cfgMt = if ($DockerMediaTypes) { $script:MediaTypes.DockerConfig } else { $script:MediaTypes.OciConfig }
    $manMt = if ($DockerMediaTypes) { $script:MediaTypes.DockerManifest } else { $script:MediaTypes.OciManifest }
    $manifest = [ordered]@{
        schemaVersion = 2
        mediaType     = $manMt
        config        = [ordered]@{ mediaType = $cfgMt; digest = $cfgBlob.Digest; size = $cfgBlob.Size }
        layers        = $layerDescs.ToArray()
    }
    $manBlob = Write-JsonBlob -LayoutPath $full -Object $manifest
    Set-OciIndexTag -LayoutPath $full -Tag $Tag -Descriptor ([ordered]@{
            mediaType = $manMt; digest = $manBlob.Digest; size = $manBlob.Size; platform = $platform
        })
    [pscustomobject]@{
        Path              = $full
        Tag               = $Tag
        Reference         = "oci:${full}:$Tag"
        ManifestDigest    = $manBlob.Digest
        ManifestSize      = $manBlob.Size
        ManifestMediaType = $manMt
        ConfigDigest      = $cfgBlob.Digest
        ConfigSize        = $cfgBlob.Size
        LayerDigests      = [string[]]@($layerDescs | ForEach-Object { $_.digest })
        LayerSizes        = [long[]]@($layerDescs | ForEach-Object { $_.size })
        LayerMediaTypes   = [string[]]@($layerDescs | ForEach-Object { $_.mediaType })
        DiffIds           = $diffIds.ToArray()
        Platform          = $platform
    }
}

function New-TestOciIndex {
    <#
    .SYNOPSIS
    Writes an image index blob over manifests already in an OCI layout and tags it in index.json.
    .DESCRIPTION
    -Manifest items: hashtables @{ Digest; Size; MediaType; Platform = @{ os; architecture; variant } }
    or New-TestOciLayout results (ManifestDigest/ManifestSize/ManifestMediaType/Platform are used).
    Size is read from the blob file when omitted; MediaType defaults to the OCI manifest type.
    -DockerMediaTypes writes a Docker manifest list instead of an OCI index.
    .OUTPUTS
    PSCustomObject: Path, Tag, Reference, IndexDigest, IndexSize, MediaType, Manifests (the descriptors).
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory, Position = 0)][string] $Path,
        [Parameter(Mandatory)][string] $Tag,
        [Parameter(Mandatory)][object[]] $Manifest,
        [switch] $DockerMediaTypes
    )
    $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    Initialize-OciLayoutDirectory $full
    $descs = foreach ($m in $Manifest) {
        $get = {
            param([string[]] $Names)
            foreach ($n in $Names) {
                if ($m -is [System.Collections.IDictionary]) { if (Test-EntryKey $m $n) { return Get-EntryValue $m $n } }
                elseif ($m.PSObject.Properties[$n]) { return $m.$n }
            }
            $null
        }
        $digest = [string](& $get 'Digest', 'ManifestDigest')
        if (-not $digest) { throw 'Each -Manifest item needs a Digest (or ManifestDigest).' }
        $size = & $get 'Size', 'ManifestSize'
        if ($null -eq $size) {
            $blobFile = Join-Path $full ('blobs/sha256/' + ($digest -replace '^sha256:', ''))
            if (-not (Test-Path -LiteralPath $blobFile)) { throw "No Size given and no blob $blobFile." }
            $size = (Get-Item -LiteralPath $blobFile).Length
        }
        $mt = & $get 'MediaType', 'ManifestMediaType'
        if (-not $mt) { $mt = $script:MediaTypes.OciManifest }
        $d = [ordered]@{ mediaType = [string]$mt; digest = $digest; size = [long]$size }
        $plat = & $get 'Platform'
        if ($plat) {
            $p = [ordered]@{}
            foreach ($k in 'architecture', 'os', 'variant', 'os.version', 'os.features', 'features') {
                if ($plat -is [System.Collections.IDictionary]) { if (Test-EntryKey $plat $k) { $p[$k] = Get-EntryValue $plat $k } }
                elseif ($plat.PSObject.Properties[$k]) { $p[$k] = $plat.$k }
            }
            $d['platform'] = $p
        }
        $d
    }
    $mt = if ($DockerMediaTypes) { $script:MediaTypes.DockerList } else { $script:MediaTypes.OciIndex }
    $index = [ordered]@{ schemaVersion = 2; mediaType = $mt; manifests = @($descs) }
    $blob = Write-JsonBlob -LayoutPath $full -Object $index
    Set-OciIndexTag -LayoutPath $full -Tag $Tag -Descriptor ([ordered]@{ mediaType = $mt; digest = $blob.Digest; size = $blob.Size })
    [pscustomobject]@{
        Path        = $full
        Tag         = $Tag
        Reference   = "oci:${full}:$Tag"
        IndexDigest = $blob.Digest
        IndexSize   = $blob.Size
        MediaType   = $mt
        Manifests   = @(foreach ($d in $descs) { [pscustomobject]@{ MediaType = $d.mediaType; Digest = $d.digest; Size = $d.size; Platform = $(if ($d.Contains('platform')) { $d.platform } else { $null }) } })
    }
}

function New-TestDockerArchive {
    <#
    .SYNOPSIS
    Writes a legacy `docker save` archive (manifest.json, <confighex>.json, <hex>/layer.tar) with GNU tar.
    .DESCRIPTION
    -Layer: byte[] tars (a single byte[] is one layer). -OmitLayer: 0-based layer indexes whose
    layer.tar is left out of the archive while manifest.json still names it (bad input).
    .OUTPUTS
    PSCustomObject: Path, RepoTags, ConfigDigest, ConfigName, LayerDigests, LayerPaths, DiffIds.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory, Position = 0)][string] $Path,
        [Parameter(Mandatory)][AllowEmptyCollection()][object[]] $Layer,
        [AllowEmptyCollection()][string[]] $RepoTag = @('test/app:1.0'),
        [System.Collections.IDictionary] $Config,
        [int[]] $OmitLayer = @(),
        [string] $Architecture = 'amd64',
        [string] $Os = 'linux'
    )
    $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    $layers = ConvertTo-LayerList $Layer
    $work = New-TestDirectory -Prefix 'dockerarchive' -Temp
    try {
        $hexes = [System.Collections.Generic.List[string]]::new()
        $layerPaths = [System.Collections.Generic.List[string]]::new()
        for ($i = 0; $i -lt $layers.Count; $i++) {
            $hex = Get-Sha256Hex $layers[$i]
            $hexes.Add($hex); $layerPaths.Add("$hex/layer.tar")
            if ($OmitLayer -contains $i) { continue }
            [void][System.IO.Directory]::CreateDirectory((Join-Path $work $hex))
            [System.IO.File]::WriteAllBytes((Join-Path $work "$hex/layer.tar"), $layers[$i])
        }
        $diffIds = [string[]]@($hexes | ForEach-Object { "sha256:$_" })
        $cfgObj = New-ImageConfigObject -Config $Config -Architecture $Architecture -Os $Os -Variant $null -DiffIds $diffIds
        $cfgBytes = $script:Utf8.GetBytes((ConvertTo-Json -InputObject $cfgObj -Depth 32 -Compress))
        $cfgHex = Get-Sha256Hex $cfgBytes
        [System.IO.File]::WriteAllBytes((Join-Path $work "$cfgHex.json"), $cfgBytes)
        $tags = if ($RepoTag -and $RepoTag.Count -gt 0) { , [string[]]$RepoTag } else { $null }
        $manifest = @([ordered]@{ Config = "$cfgHex.json"; RepoTags = $tags; Layers = $layerPaths.ToArray() })
        [System.IO.File]::WriteAllText((Join-Path $work 'manifest.json'), (ConvertTo-Json -InputObject $manifest -Depth 8 -Compress), $script:Utf8)
        $members = [System.Collections.Generic.List[string]]::new()
        $members.Add('manifest.json'); $members.Add("$cfgHex.json")
        for ($i = 0; $i -lt $hexes.Count; $i++) {
            if ($OmitLayer -contains $i -or $members.Contains($hexes[$i])) { continue }
            $members.Add($hexes[$i])
        }
        $dir = [System.IO.Path]::GetDirectoryName($full)
        if ($dir) { [void][System.IO.Directory]::CreateDirectory($dir) }
        Invoke-NativeChecked tar (@('--owner=0', '--group=0', '--numeric-owner', '--mtime=@1700000000', '-C', $work, '-cf', $full) + $members)
        [pscustomobject]@{
            Path         = $full
            RepoTags     = [string[]]@($RepoTag)
            ConfigDigest = "sha256:$cfgHex"
            ConfigName   = "$cfgHex.json"
            LayerDigests = $diffIds
            LayerPaths   = $layerPaths.ToArray()
            DiffIds      = $diffIds
        }
    }
    finally { Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue }
}

#region compressed segments and the cpio reader

$script:NonPublic = [System.Reflection.BindingFlags]'NonPublic,Instance'

function Test-GzipMagic { param([byte[]] $Buf, [long] $Pos) $Pos + 1 -lt $Buf.Length -and $Buf[$Pos] -eq 0x1F -and $Buf[$Pos + 1] -eq 0x8B }
function Test-ZstdMagic {
    param([byte[]] $Buf, [long] $Pos)
    if ($Pos + 3 -ge $Buf.Length) { return $false }
    ($Buf[$Pos] -eq 0x28 -and $Buf[$Pos + 1] -eq 0xB5 -and $Buf[$Pos + 2] -eq 0x2F -and $Buf[$Pos + 3] -eq 0xFD) -or
    (($Buf[$Pos] -band 0xF0) -eq 0x50 -and $Buf[$Pos + 1] -eq 0x2A -and $Buf[$Pos + 2] -eq 0x4D -and $Buf[$Pos + 3] -eq 0x18)
}

function Expand-GzipSegment {
    # Decompresses the gzip member(s) starting at $Pos (consecutive members are one segment, as
    # GZipStream reads them). Returns @{ Content; Consumed }. Throws on corrupt or truncated data.
    # The number of input bytes consumed comes from the inflater's AvailIn (private field of the
    # .NET runtime; checked on .NET 10): GZipStream itself would silently stop at non-gzip bytes.
    param([byte[]] $Buf, [long] $Pos)
    $ms = [System.IO.MemoryStream]::new($Buf, [int]$Pos, [int]($Buf.Length - $Pos), $false)
    $gz = [System.IO.Compression.GZipStream]::new($ms, [System.IO.Compression.CompressionMode]::Decompress, $true)
    $out = [System.IO.MemoryStream]::new()
    try { $gz.CopyTo($out) }
    catch { throw "gzip data at offset $Pos is corrupt: $($_.Exception.Message)" }
    try {
        $ds = [System.IO.Compression.GZipStream].GetField('_deflateStream', $script:NonPublic).GetValue($gz)
        $inf = [System.IO.Compression.DeflateStream].GetField('_inflater', $script:NonPublic).GetValue($ds)
        $finished = [bool]$inf.GetType().GetField('_finished', $script:NonPublic).GetValue($inf)
        $handle = $inf.GetType().GetField('_zlibStream', $script:NonPublic).GetValue($inf)
        $availIn = [long]$handle.AvailIn
    }
    catch { throw "Cannot find where the gzip data at offset $Pos ends (this .NET runtime's GZipStream internals differ): $($_.Exception.Message)" }
    finally { $gz.Dispose() }
    if (-not $finished) { throw "gzip data at offset $Pos is truncated (the deflate stream does not end)." }
    @{ Content = $out.ToArray(); Consumed = $ms.Position - $availIn }
}

function Get-ZstdFrame {
    <#
    .SYNOPSIS
    Walks the zstd frames (and skippable frames) of $Bytes from -Offset without decoding them.
    .OUTPUTS
    One object per frame: Offset, Length, Skippable, ContentSize (the Frame_Content_Size field, or
    $null when the header has none, as in a frame written by a streaming compressor of unknown size).
    Stops at the first byte that is not a frame magic.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param([Parameter(Mandatory, Position = 0)][byte[]] $Bytes, [long] $Offset = 0)
    $Buf = $Bytes
    $p = $Offset
    while (Test-ZstdMagic $Buf $p) {
        $start = $p
        if ($Buf[$p] -ne 0x28) {
            # skippable frame: magic, 4-byte LE size, data
            if ($p + 8 -gt $Buf.Length) { throw "Truncated zstd skippable frame at offset $p." }
            $p += 8 + [System.BitConverter]::ToUInt32($Buf, [int]($p + 4))
            if ($p -gt $Buf.Length) { throw 'Truncated zstd skippable frame.' }
            [pscustomobject]@{ Offset = $start; Length = $p - $start; Skippable = $true; ContentSize = $null }
            continue
        }
        $p += 4
        if ($p -ge $Buf.Length) { throw "Truncated zstd frame header at offset $start." }
        $fhd = $Buf[$p]; $p++
        $fcsFlag = $fhd -shr 6; $single = ($fhd -band 0x20) -ne 0; $checksum = ($fhd -band 0x04) -ne 0; $dictFlag = $fhd -band 3
        if ($fhd -band 0x08) { throw "zstd frame at offset $start has the reserved bit set." }
        if (-not $single) { $p++ }
        $p += @(0, 1, 2, 4)[$dictFlag]
        $fcsBytes = if ($fcsFlag -eq 0) { if ($single) { 1 } else { 0 } } else { @(0, 2, 4, 8)[$fcsFlag] }
        if ($p + $fcsBytes -gt $Buf.Length) { throw "Truncated zstd frame header at offset $start." }
        $contentSize = switch ($fcsBytes) {
            0 { $null }
            1 { [long]$Buf[$p] }
            2 { [long][System.BitConverter]::ToUInt16($Buf, [int]$p) + 256 }
            4 { [long][System.BitConverter]::ToUInt32($Buf, [int]$p) }
            8 { [long][System.BitConverter]::ToUInt64($Buf, [int]$p) }
        }
        $p += $fcsBytes
        while ($true) {
            if ($p + 3 -gt $Buf.Length) { throw "Truncated zstd frame starting at offset $start." }
            $bh = [int]$Buf[$p] -bor ([int]$Buf[$p + 1] -shl 8) -bor ([int]$Buf[$p + 2] -shl 16)
            $p += 3
            $last = ($bh -band 1) -ne 0; $btype = ($bh -shr 1) -band 3; $bsize = $bh -shr 3
            if ($btype -eq 3) { throw "zstd frame at offset $start has a reserved block type." }
            $p += if ($btype -eq 1) { 1 } else { $bsize }
            if ($p -gt $Buf.Length) { throw "Truncated zstd frame starting at offset $start." }
            if ($last) { break }
        }
        if ($checksum) { $p += 4 }
        if ($p -gt $Buf.Length) { throw "Truncated zstd frame starting at offset $start." }
        [pscustomobject]@{ Offset = $start; Length = $p - $start; Skippable = $false; ContentSize = $contentSize }
    }
}

function Get-ZstdSegmentEnd {
    # The end offset of the run of zstd frames that starts at $Pos.
    param([byte[]] $Buf, [long] $Pos)
    $last = Get-ZstdFrame $Buf -Offset $Pos | Select-Object -Last 1
    if ($last) { $last.Offset + $last.Length } else { $Pos }
}

function Expand-ZstdSegment {
    param([byte[]] $Buf, [long] $Pos)
    $end = Get-ZstdSegmentEnd $Buf $Pos
    $in = [System.IO.Path]::GetTempFileName(); $out = "$in.out"
    try {
        $fs = [System.IO.File]::Create($in)
        try { $fs.Write($Buf, [int]$Pos, [int]($end - $Pos)) } finally { $fs.Dispose() }
        Invoke-NativeChecked zstd @('-d', '-q', '-f', '-o', $out, $in)
        @{ Content = [System.IO.File]::ReadAllBytes($out); Consumed = $end - $Pos }
    }
    finally { Remove-Item -LiteralPath $in, $out -Force -ErrorAction SilentlyContinue }
}

function Expand-TestCompressedBytes {
    <#
    .SYNOPSIS
    Returns a file's bytes decompressed the kernel's way (gzip/zstd parts, NUL padding, plain parts), concatenated; plain files as they are.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    [OutputType([byte[]])]
    param([Parameter(Mandatory, Position = 0)][string] $Path)
    $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    $bytes = [System.IO.File]::ReadAllBytes($full)
    if (-not (Test-GzipMagic $bytes 0) -and -not (Test-ZstdMagic $bytes 0)) { Write-Output -NoEnumerate $bytes; return }
    Write-Output -NoEnumerate (Expand-AllSegments $bytes)
}

function Expand-AllSegments {
    param([byte[]] $Bytes)
    $ms = [System.IO.MemoryStream]::new()
    $buf = $Bytes; $pos = 0L
    while ($pos -lt $buf.Length) {
        if ($buf[$pos] -eq 0) { $pos++; continue }
        if (Test-GzipMagic $buf $pos) { $r = Expand-GzipSegment $buf $pos }
        elseif (Test-ZstdMagic $buf $pos) { $r = Expand-ZstdSegment $buf $pos }
        else { $ms.Write($buf, [int]$pos, [int]($buf.Length - $pos)); break }   # plain from here on
        $ms.Write($r.Content, 0, $r.Content.Length); $pos += $r.Consumed
    }
    , $ms.ToArray()
}

function Read-CpioEntry {
    # Parses one newc entry of $Buf at $Pos (bounded by $End). Adds it to $Ctx.Entries unless it
    # is the trailer. Returns the offset after the entry and its padding.
    param([byte[]] $Buf, [long] $Pos, [long] $End, [hashtable] $Ctx, [string] $Compression, [int] $Segment)
    $ascii = [System.Text.Encoding]::ASCII
    $where = "offset $Pos of segment $Segment ($Compression)"
    if ($Pos + 110 -gt $End) { throw "Truncated cpio header at $where." }
    $magic = $ascii.GetString($Buf, [int]$Pos, 6)
    if ($magic -ne '070701' -and $magic -ne '070702') { throw "Bad cpio magic '$magic' at $where." }
    $hex = $ascii.GetString($Buf, [int]($Pos + 6), 104)
    if ($hex -notmatch '^[0-9A-Fa-f]{104}$') { throw "Bad hex field in the cpio header at ${where}: '$hex'." }
    $f = [long[]]::new(13)
    for ($i = 0; $i -lt 13; $i++) { $f[$i] = [System.Convert]::ToInt64($hex.Substring(8 * $i, 8), 16) }
    $ino, $mode, $uid, $gid, $nlink, $mtime, $size, $dmaj, $dmin, $rmaj, $rmin, $namesize, $check = $f
    if ($namesize -lt 1) { throw "cpio header at $where has namesize 0." }
    $nameStart = $Pos + 110
    if ($nameStart + $namesize -gt $End) { throw "Truncated cpio name at $where." }
    if ($Buf[$nameStart + $namesize - 1] -ne 0) { throw "cpio name at $where is not NUL-terminated." }
    $name = $script:Utf8.GetString($Buf, [int]$nameStart, [int]($namesize - 1))
    $dataStart = $nameStart + $namesize
    $dataStart += (4 - (($dataStart - $Ctx.Base) % 4)) % 4
    if ($dataStart + $size -gt $End) { throw "Truncated cpio data for '$name' at ${where}: needs $size bytes." }
    $next = $dataStart + $size
    $next += (4 - (($next - $Ctx.Base) % 4)) % 4
    if ($next -gt $End) { $next = $End }
    $Ctx.InArchive = $true
    if ($name -eq 'TRAILER!!!') {
        $Ctx.Archive++; $Ctx.InArchive = $false
        if ($Ctx.FirstOnly) { $Ctx.Stop = $true }
        return $next
    }
    $type = $script:CpioTypes[[int]($mode -band 0xF000)]
    if (-not $type) { $type = 'Unknown' }
    $linkTarget = $null; $hash = $null
    if ($type -eq 'Symlink') { $linkTarget = $script:Utf8.GetString($Buf, [int]$dataStart, [int]$size) }
    if ($type -eq 'File') { $hash = [System.Convert]::ToHexString($Ctx.Sha.ComputeHash($Buf, [int]$dataStart, [int]$size)).ToLowerInvariant() }
    $Ctx.Entries.Add([pscustomobject]@{
            Name        = $name
            Ino         = $ino
            Mode        = [int]$mode
            Type        = $type
            Perm        = [int]($mode -band 0xFFF)
            Uid         = $uid
            Gid         = $gid
            NLink       = $nlink
            MTime       = $mtime
            Size        = $size
            DevMajor    = $dmaj
            DevMinor    = $dmin
            RDevMajor   = $rmaj
            RDevMinor   = $rmin
            Check       = $check
            LinkTarget  = $linkTarget
            DataSha256  = $hash
            Magic       = $magic
            Part        = $Ctx.Archive
            Segment     = $Segment
            Compression = $Compression
            Offset      = $Pos
        })
    $next
}

function Get-CpioListing {
    <#
    .SYNOPSIS
    Strict, independent reader of cpio "newc" initramfs archives (plain, gzip, zstd, and the kernel's concatenations of them).
    .DESCRIPTION
    Reads the file the way the kernel's unpack_to_rootfs does: NUL bytes between parts are skipped,
    plain cpio data starts with '0', gzip (GZipStream) and zstd (`zstd -d`) parts are decompressed
    and their content parsed as cpio entries and NUL padding; an archive may go on across parts.
    Every TRAILER!!! ends an archive (Part is the 0-based archive number). Throws on bad magic, bad
    hex, a name without its NUL, truncated headers/data/compressed streams, junk inside a compressed
    part, and (unless -AllowMissingTrailer) a stream whose last archive has no TRAILER!!!.
    -FirstArchiveOnly stops at the first trailer. Names are returned exactly as stored ('.' and './x'
    stay). DataSha256 is set for every File entry, including a hardlink member stored with size 0
    (it is then the hash of no bytes).
    .OUTPUTS
    PSCustomObject per entry: Name, Ino, Mode (with type bits), Type (File, Dir, Symlink, CharDevice,
    BlockDevice, Fifo, Socket, Unknown), Perm (Mode -band 0xFFF), Uid, Gid, NLink, MTime, Size,
    DevMajor, DevMinor, RDevMajor, RDevMinor, Check, LinkTarget (symlinks), DataSha256 (files,
    lowercase hex), Magic, Part (archive number), Segment (0-based physical part), Compression
    (none, gzip, zstd), Offset (header offset within the segment's (decompressed) data).
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0, ValueFromPipelineByPropertyName)][Alias('FullName')][string] $Path,
        [switch] $FirstArchiveOnly,
        [switch] $AllowMissingTrailer
    )
    process {
        $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
        $buf = [System.IO.File]::ReadAllBytes($full)
        $ctx = @{
            Entries = [System.Collections.Generic.List[object]]::new(); Archive = 0; InArchive = $false
            FirstOnly = [bool]$FirstArchiveOnly; Stop = $false; Sha = [System.Security.Cryptography.SHA256]::Create(); Base = 0L
        }
        $segment = -1; $pos = 0L; $sawEntry = $false
        try {
            while ($pos -lt $buf.Length -and -not $ctx.Stop) {
                if ($buf[$pos] -eq 0) { $pos++; continue }
                if ($buf[$pos] -eq 0x30) {
                    # plain cpio at file level: one segment runs until a compressed part or the end.
                    # The kernel takes it as cpio only at a 4-byte aligned file offset.
                    if ($pos % 4 -ne 0) { throw "Plain cpio data at unaligned offset $pos of '$full' (the kernel needs a multiple of 4)." }
                    $segment++; $ctx.Base = 0L
                    while ($pos -lt $buf.Length -and -not $ctx.Stop) {
                        if ($buf[$pos] -eq 0) { $pos++; continue }
                        if ($buf[$pos] -ne 0x30) { break }
                        $pos = Read-CpioEntry $buf $pos $buf.Length $ctx 'none' $segment
                        $sawEntry = $true
                    }
                    continue
                }
                if (Test-GzipMagic $buf $pos) { $r = Expand-GzipSegment $buf $pos; $comp = 'gzip' }
                elseif (Test-ZstdMagic $buf $pos) { $r = Expand-ZstdSegment $buf $pos; $comp = 'zstd' }
                else { throw "Bad magic at offset $pos of '$full': neither cpio (070701), gzip nor zstd." }
                $segment++
                $content = $r.Content; $pos += $r.Consumed
                $cpos = 0L; $ctx.Base = 0L
                while ($cpos -lt $content.Length -and -not $ctx.Stop) {
                    if ($content[$cpos] -eq 0) { $cpos++; continue }
                    if ($content[$cpos] -ne 0x30) { throw "Junk at offset $cpos inside $comp part $segment of '$full' (not a cpio header)." }
                    $cpos = Read-CpioEntry $content $cpos $content.Length $ctx $comp $segment
                    $sawEntry = $true
                }
            }
            if (-not $sawEntry) { throw "No cpio entries in '$full'." }
            if ($ctx.InArchive -and -not $AllowMissingTrailer) { throw "'$full' ends without TRAILER!!! (use -AllowMissingTrailer to accept that)." }
            $ctx.Entries.ToArray()
        }
        finally { $ctx.Sha.Dispose() }
    }
}

function Expand-TestCpioArchive {
    <#
    .SYNOPSIS
    Extracts a cpio archive (plain or compressed) into a directory with GNU `cpio -idm --no-absolute-filenames` (as root it keeps owners and device nodes); GNU cpio stops at the first TRAILER!!!.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param([Parameter(Mandatory, Position = 0)][string] $Path, [Parameter(Mandatory, Position = 1)][string] $Destination)
    $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    $dest = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Destination)
    [void][System.IO.Directory]::CreateDirectory($dest)
    $tmp = [System.IO.Path]::GetTempFileName()
    try {
        [System.IO.File]::WriteAllBytes($tmp, (Expand-AllSegments ([System.IO.File]::ReadAllBytes($full))))
        Invoke-NativeChecked sh @('-c', 'cd "$1" && cpio -idm --quiet --no-absolute-filenames < "$2"', 'sh', $dest, $tmp)
    }
    finally { Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue }
}

#endregion

function Get-TreeListing {
    <#
    .SYNOPSIS
    Lists a directory tree on disk (not following symlinks) as objects comparable with Get-CpioListing.
    .DESCRIPTION
    Uses `find -P <dir> -mindepth 1 -fprintf` with NUL-separated fields (names may hold newlines),
    `stat --printf '%Hr %Lr'` for device numbers (GNU find has no rdev directive), SHA-256 of each file's content.
    .OUTPUTS
    PSCustomObject per entry, sorted by Name (ordinal): Name (relative, '/'-separated, no './'),
    Type (File, Dir, Symlink, CharDevice, BlockDevice, Fifo, Socket), Perm (int, incl. setuid/setgid/
    sticky), Uid, Gid, Size (files only, else 0), LinkTarget, RDevMajor, RDevMinor, DataSha256
    (files, lowercase hex), NLink, Ino, MTime (unix seconds).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string] $Path)
    $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    if (-not [System.IO.Directory]::Exists($full)) { throw "No directory '$full'." }
    $tmp = [System.IO.Path]::GetTempFileName()
    try {
        Invoke-NativeChecked find @('-P', $full, '-mindepth', '1', '-fprintf', $tmp, '%P\0%y\0%m\0%U\0%G\0%s\0%l\0%n\0%i\0%T@\0')
        $text = $script:Utf8.GetString([System.IO.File]::ReadAllBytes($tmp))
    }
    finally { Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue }
    $fields = $text.Split([char]0)
    $n = 10
    $types = @{ f = 'File'; d = 'Dir'; l = 'Symlink'; c = 'CharDevice'; b = 'BlockDevice'; p = 'Fifo'; s = 'Socket' }
    $items = [System.Collections.Generic.List[object]]::new()
    for ($i = 0; $i + $n -le $fields.Length; $i += $n) {
        $type = $types[$fields[$i + 1]]
        if (-not $type) { $type = 'Unknown' }
        $items.Add([pscustomobject]@{
                Name       = $fields[$i]
                Type       = $type
                Perm       = [System.Convert]::ToInt32($fields[$i + 2], 8)
                Uid        = [long]$fields[$i + 3]
                Gid        = [long]$fields[$i + 4]
                Size       = if ($type -eq 'File') { [long]$fields[$i + 5] } else { 0L }
                LinkTarget = if ($type -eq 'Symlink') { $fields[$i + 6] } else { $null }
                RDevMajor  = 0L
                RDevMinor  = 0L
                DataSha256 = $null
                NLink      = [long]$fields[$i + 7]
                Ino        = [long]$fields[$i + 8]
                MTime      = [long][Math]::Floor([double]::Parse($fields[$i + 9], [System.Globalization.CultureInfo]::InvariantCulture))
            })
    }
    $devs = @($items | Where-Object { $_.Type -in 'CharDevice', 'BlockDevice' })
    if ($devs.Count -gt 0) {
        $r = Invoke-NativeChecked stat (@('--printf', '%Hr %Lr\n', '--') + @($devs | ForEach-Object { Join-Path $full $_.Name })) -PassThru
        $lines = $r.StdOut.TrimEnd("`n").Split("`n")
        for ($j = 0; $j -lt $devs.Count; $j++) {
            $mm = $lines[$j].Split(' ')
            $devs[$j].RDevMajor = [long]$mm[0]; $devs[$j].RDevMinor = [long]$mm[1]
        }
    }
    foreach ($it in $items) {
        if ($it.Type -eq 'File') {
            $fs = [System.IO.File]::OpenRead([System.IO.Path]::Combine($full, $it.Name))
            try { $it.DataSha256 = [System.Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData($fs)).ToLowerInvariant() }
            finally { $fs.Dispose() }
        }
    }
    $items.Sort([System.Comparison[object]] { param($a, $b) [string]::CompareOrdinal($a.Name, $b.Name) })
    $items.ToArray()
}

function Invoke-QemuBoot {
    <#
    .SYNOPSIS
    Boots a kernel with the given initramfs under QEMU (q35, TCG, serial console) and returns the serial output.
    .DESCRIPTION
    Runs `timeout <t> qemu-system-x86_64 -M q35 -accel tcg -m <m> -no-reboot -nographic -kernel <k>
    -initrd <path> -append 'console=ttyS0 panic=-1 quiet <extra>'` with stdin closed. The kernel
    defaults to the newest /boot/vmlinuz-* (by version). ExitCode 0 means the guest powered off.
    .OUTPUTS
    PSCustomObject: ExitCode, TimedOut, Output (serial console, stdout), StdErr, Seconds, Kernel, Arguments.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, Position = 0)][string] $Initrd,
        [int] $TimeoutSeconds = 120,
        [int] $MemoryMB = 256,
        [string] $Append,
        [string] $Kernel,
        [string[]] $QemuArgument = @()
    )
    $initrdFull = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Initrd)
    if (-not (Test-Path -LiteralPath $initrdFull)) { throw "No initrd '$initrdFull'." }
    if (-not $Kernel) {
        $Kernel = Get-ChildItem -Path '/boot' -Filter 'vmlinuz-*' -File |
            Sort-Object { $v = ($_.Name -replace '^vmlinuz-', '') -replace '[^0-9.].*$', ''; try { [version]($v.TrimEnd('.')) } catch { [version]'0.0' } }, Name |
            Select-Object -Last 1 -ExpandProperty FullName
        if (-not $Kernel) { throw 'No /boot/vmlinuz-* kernel found.' }
    }
    $cmdline = ('console=ttyS0 panic=-1 quiet ' + $Append).Trim()
    $qargs = @("$TimeoutSeconds", 'qemu-system-x86_64', '-M', 'q35', '-accel', 'tcg', '-m', "$MemoryMB", '-no-reboot', '-nographic',
        '-kernel', $Kernel, '-initrd', $initrdFull, '-append', $cmdline) + $QemuArgument
    $psi = [System.Diagnostics.ProcessStartInfo]::new('timeout')
    foreach ($a in $qargs) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.RedirectStandardInput = $true
    $psi.UseShellExecute = $false
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $p = [System.Diagnostics.Process]::Start($psi)
    $p.StandardInput.Close()
    $outTask = $p.StandardOutput.ReadToEndAsync()
    $errTask = $p.StandardError.ReadToEndAsync()
    if (-not $p.WaitForExit(($TimeoutSeconds + 15) * 1000)) { $p.Kill($true); $p.WaitForExit() }
    $sw.Stop()
    $code = $p.ExitCode
    [pscustomobject]@{
        ExitCode  = $code
        TimedOut  = ($code -eq 124 -or $code -eq 137)
        Output    = $outTask.GetAwaiter().GetResult()
        StdErr    = $errTask.GetAwaiter().GetResult()
        Seconds   = [Math]::Round($sw.Elapsed.TotalSeconds, 2)
        Kernel    = $Kernel
        Arguments = $qargs[1..($qargs.Count - 1)]
    }
}

function New-BusyboxLayer {
    <#
    .SYNOPSIS
    Returns a tar (byte[]) with bin/, sbin/, etc/, the static /bin/busybox as bin/busybox (0755) and applet symlinks; plus an `init` script (0755, LF) when -Init is given.
    .DESCRIPTION
    Applet symlinks bin/<applet> -> busybox for sh, poweroff, mount, echo, cat, ls plus -Applet.
    -InitPath changes where the init script goes (default 'init'); -SystemDirectories adds dev, proc,
    sys, run (0755) and tmp (1777), which the image otherwise lacks.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    [OutputType([byte[]])]
    param(
        [string] $Init,
        [string] $InitPath = 'init',
        [string[]] $Applet = @(),
        [switch] $SystemDirectories,
        [string] $BusyboxPath = '/bin/busybox'
    )
    $entries = [System.Collections.Generic.List[hashtable]]::new()
    foreach ($d in 'bin/', 'sbin/', 'etc/') { $entries.Add(@{ Name = $d; Type = 'Dir'; Mode = 493 }) }
    if ($SystemDirectories) {
        foreach ($d in 'dev/', 'proc/', 'run/', 'sys/') { $entries.Add(@{ Name = $d; Type = 'Dir'; Mode = 493 }) }
        $entries.Add(@{ Name = 'tmp/'; Type = 'Dir'; Mode = [System.Convert]::ToInt32('1777', 8) })
    }
    $entries.Add(@{ Name = 'bin/busybox'; Type = 'File'; Mode = 493; Data = [System.IO.File]::ReadAllBytes($BusyboxPath) })
    foreach ($a in (@('sh', 'poweroff', 'mount', 'echo', 'cat', 'ls') + $Applet | Select-Object -Unique)) {
        $entries.Add(@{ Name = "bin/$a"; Type = 'Symlink'; LinkName = 'busybox' })
    }
    if ($PSBoundParameters.ContainsKey('Init')) {
        $entries.Add(@{ Name = $InitPath; Type = 'File'; Mode = 493; Data = ($Init -replace "`r`n", "`n") })
    }
    Write-Output -NoEnumerate (New-TestTar -Entry $entries.ToArray())
}

function Get-FreeTcpPort {
    <#
    .SYNOPSIS
    Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it).
    #>
    [CmdletBinding()]
    [OutputType([int])]
    param()
    $l = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    try { $l.Start(); ([System.Net.IPEndPoint]$l.LocalEndpoint).Port }
    finally { $l.Stop() }
}

function New-TestDirectory {
    <#
    .SYNOPSIS
    Creates a new uniquely named directory and returns its full path: under -Parent, else under Pester's $TestDrive while a test runs (cleaned by Pester), else under [IO.Path]::GetTempPath() (-Temp forces that; the caller removes it).
    #>
    [CmdletBinding(PositionalBinding = $false)]
    [OutputType([string])]
    param([string] $Parent, [string] $Prefix = 'initramfsps-test', [switch] $Temp)
    if (-not $Parent -and -not $Temp) {
        $td = Get-Variable -Name TestDrive -Scope Global -ValueOnly -ErrorAction SilentlyContinue
        if ($td -and [System.IO.Directory]::Exists("$td")) { $Parent = "$td" }
    }
    if (-not $Parent) { $Parent = [System.IO.Path]::GetTempPath() }
    $Parent = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Parent)
    $dir = Join-Path $Parent ("$Prefix-" + [System.Guid]::NewGuid().ToString('N').Substring(0, 12))
    [void][System.IO.Directory]::CreateDirectory($dir)
    $dir
}

function Invoke-ChildPwsh {
    <#
    .SYNOPSIS
    Runs -Command in a new process of the same pwsh as this one (-NoProfile -NonInteractive), as a user's fresh session would, and returns its exit code and output.
    .DESCRIPTION
    Works whether this session is a pwsh executable or `dotnet pwsh` (the dotnet host plus
    pwsh.dll). The command runs with $ErrorActionPreference = 'Stop' and plain-text output, in
    -WorkingDirectory. -Environment sets variables of the child; a $null value removes one (the
    rest is inherited). Stdin is closed. A child still running after -TimeoutSeconds is killed with
    its process tree and is an error.
    .OUTPUTS
    PSCustomObject: ExitCode, Output (stdout then stderr), Seconds.
    #>
    [CmdletBinding(PositionalBinding = $false)]
    param(
        [Parameter(Mandatory, Position = 0)][string] $Command,
        [string] $WorkingDirectory = $PWD.ProviderPath,
        [System.Collections.IDictionary] $Environment = @{},
        [int] $TimeoutSeconds = 300
    )
    $psi = [System.Diagnostics.ProcessStartInfo]::new([System.Environment]::ProcessPath)
    if ([System.IO.Path]::GetFileNameWithoutExtension([System.Environment]::ProcessPath) -eq 'dotnet') {
        $psi.ArgumentList.Add([System.Environment]::GetCommandLineArgs()[0])  # .../pwsh.dll
    }
    $script = "`$ErrorActionPreference = 'Stop'`n`$PSStyle.OutputRendering = 'PlainText'`n$Command"
    foreach ($a in '-NoProfile', '-NonInteractive', '-Command', $script) { $psi.ArgumentList.Add($a) }
    $psi.UseShellExecute = $false
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.WorkingDirectory = $WorkingDirectory
    foreach ($k in $Environment.Keys) {
        if ($null -eq $Environment[$k]) { [void]$psi.Environment.Remove([string]$k) } else { $psi.Environment[[string]$k] = [string]$Environment[$k] }
    }
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $process = [System.Diagnostics.Process]::Start($psi)
    $process.StandardInput.Close()
    $stderr = $process.StandardError.ReadToEndAsync()
    $stdout = $process.StandardOutput.ReadToEndAsync()
    if (-not $process.WaitForExit($TimeoutSeconds * 1000)) {
        $process.Kill($true)
        throw "The child pwsh ran for over $TimeoutSeconds s: $Command"
    }
    $process.WaitForExit()
    [pscustomobject]@{ ExitCode = $process.ExitCode; Output = $stdout.Result + $stderr.Result; Seconds = [Math]::Round($clock.Elapsed.TotalSeconds, 1) }
}

function Get-EngineType {
    <#
    .SYNOPSIS
    The engine's type named -Name (InitramfsPS.Core.dll, of the module loaded), public or internal.
    .DESCRIPTION
    The engine keeps all but its public API internal, which PowerShell's [type] literals cannot
    name. Tests that measure the engine itself (bytes hashed, an entry cap of their own) reach it
    through this and Invoke-EngineMethod.
    #>
    [CmdletBinding()]
    [OutputType([type])]
    param([Parameter(Mandatory, Position = 0)][string] $Name)
    $assembly = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'InitramfsPS.Core' } | Select-Object -First 1
    if (-not $assembly) { throw 'InitramfsPS.Core is not loaded: import the module first.' }
    $assembly.GetType($Name, $true)
}

function Get-EngineValue {
    <#
    .SYNOPSIS
    The value of a static field, constant or property -Member of the engine's type -Type (public or internal).
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string] $Type, [Parameter(Mandatory, Position = 1)][string] $Member)
    $t = Get-EngineType $Type
    $flags = [Reflection.BindingFlags]'Public,NonPublic,Static'
    $field = $t.GetField($Member, $flags)
    if ($field) { return $field.GetValue($null) }
    $property = $t.GetProperty($Member, $flags)
    if ($property) { return $property.GetValue($null) }
    throw "$Type has no static member $Member."
}

function Invoke-EngineMethod {
    <#
    .SYNOPSIS
    Calls the static method -Method of the engine's type -Type (public or internal) with -Arguments.
    .DESCRIPTION
    A failure surfaces as calling a public method would: a MethodInvocationException whose
    InnerException is the engine's own exception.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string] $Type, [Parameter(Mandatory, Position = 1)][string] $Method, [object[]] $Arguments = @())
    $m = (Get-EngineType $Type).GetMethod($Method, [Reflection.BindingFlags]'Public,NonPublic,Static')
    if (-not $m) { throw "$Type has no static method $Method." }
    # Reflection takes the objects themselves, not PowerShell's wrappers of them.
    $plain = [object[]]::new($Arguments.Count)
    for ($i = 0; $i -lt $Arguments.Count; $i++) { $plain[$i] = if ($null -eq $Arguments[$i]) { $null } else { $Arguments[$i].psobject.BaseObject } }
    try { $m.Invoke($null, $plain) }
    catch {
        $inner = $_.Exception
        while ($inner -is [Management.Automation.MethodInvocationException] -or $inner -is [Reflection.TargetInvocationException]) { $inner = $inner.InnerException }
        throw [Management.Automation.MethodInvocationException]::new($inner.Message, $inner)
    }
}

function New-EngineObject {
    <#
    .SYNOPSIS
    A new instance of the engine's type -Type (public or internal), made with -Arguments.
    .DESCRIPTION
    Its public members can be called from PowerShell as on any object; only the type itself
    cannot be named in a [type] literal.
    #>
    [CmdletBinding()]
    param([Parameter(Mandatory, Position = 0)][string] $Type, [object[]] $Arguments = @())
    $plain = @(foreach ($a in $Arguments) { if ($null -eq $a) { $null } else { $a.psobject.BaseObject } })
    [Activator]::CreateInstance((Get-EngineType $Type), [Reflection.BindingFlags]'Public,NonPublic,Instance', $null, [object[]]$plain, $null)
}

Export-ModuleMember -Function New-TestTar, New-TestOciLayout, New-TestOciIndex, New-TestDockerArchive,
    Get-CpioListing, Expand-TestCpioArchive, Expand-TestCompressedBytes, Get-ZstdFrame, Get-TreeListing, Invoke-QemuBoot,
    New-BusyboxLayer, Get-FreeTcpPort, New-TestDirectory, Invoke-ChildPwsh, Get-EngineType, Get-EngineValue, Invoke-EngineMethod, New-EngineObject
