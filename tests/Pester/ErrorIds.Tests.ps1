# Every error path of every cmdlet ends in an ErrorRecord with one of the module's own ids (read
# from the source: the ids of `new InitramfsException(...)`, of ErrorRecords the cmdlets write,
# of the findings Export-Initramfs refuses with) and a category that says what went wrong: never
# a .NET exception's type name, a PowerShell provider's id, or NotSpecified.
# The table holds, for each cmdlet, the failures a user can cause with values that pass parameter
# binding: bad references, missing files, corrupt layers and archives, input of the wrong type,
# FIFOs where a file is expected, a host tree deeper than PATH_MAX, paths of other providers, ...

BeforeAll {
    $script:ModulePath = [IO.Path]::GetFullPath(($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1"))
    Import-Module $ModulePath -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory -Temp -Prefix 'initramfsps-errorids'
    $script:oldCache = $env:INITRAMFSPS_CACHE
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    # Relative paths a case might write (an output path mistaken for a relative one) land here.
    Push-Location -LiteralPath $work
    $script:oldDirectory = [Environment]::CurrentDirectory
    [Environment]::CurrentDirectory = $work

    # The module's ids, from its source.
    $source = (Get-ChildItem -LiteralPath "$PSScriptRoot/../../src" -Recurse -Filter *.cs | Where-Object FullName -NotMatch '[\\/](obj|bin)[\\/]' |
            ForEach-Object { Get-Content -Raw -LiteralPath $_.FullName }) -join "`n"
    $ids = [Collections.Generic.HashSet[string]]::new([StringComparer]::Ordinal)
    $patterns = @(
        'new InitramfsException\(\s*"(\w+)"'                               # new InitramfsException("Id", ...)
        'new(?:\s+InitramfsException)?\(\s*"([A-Z]\w+)",\s*(?:FailureKind|")' # target-typed new("Id", FailureKind...) and InitProblem("Id", "...")
        '"([A-Z]\w+)",\s*ErrorCategory\.'                                   # new ErrorRecord(ex, "Id", ErrorCategory...)
        'new Finding\(FindingSeverity\.\w+,\s*"(\w+)"'                      # findings: Export-Initramfs refuses with their ids
        'InitramfsException\([^;]*?\?\s*"([A-Z]\w+)"\s*:\s*"[A-Z]\w+"'       # a ? "Id" : "Id" choice
        'InitramfsException\([^;]*?\?\s*"[A-Z]\w+"\s*:\s*"([A-Z]\w+)"'
        'ResolveHostPaths\([^;]*?"(\w+)",\s*"\w+",'                          # the ids ResolveHostPaths and FileSystemPath are given
        'ResolveHostPaths\([^;]*?"\w+",\s*"(\w+)",'
        'FileSystemPath\([^;]*?,\s*"(\w+)",'
    )
    foreach ($p in $patterns) { foreach ($m in [regex]::Matches($source, $p)) { $null = $ids.Add($m.Groups[1].Value) } }
    # errorIdPrefix + "OutsideRoot" / "Invalid" (RootfsPath.Normalize, Rootfs.RealPath)
    foreach ($prefix in @('Path') + @([regex]::Matches($source, 'errorIdPrefix:\s*"(\w+)"') | ForEach-Object { $_.Groups[1].Value })) {
        $null = $ids.Add("${prefix}OutsideRoot"); $null = $ids.Add("${prefix}Invalid")
    }
    $script:ModuleIds = $ids

    # Inputs.
    $script:init = @{ Name = 'init'; Data = "#!/bin/sh`n"; Mode = '0755' }
    $script:img = New-TestOciLayout -Path (Join-Path $work 'img') -Tag t -Layer @(, (New-TestTar -Entry @(
                $init, @{ Name = 'bin/'; Type = 'Dir' }, @{ Name = 'bin/sh'; Data = 'a shell'; Mode = '0755' },
                @{ Name = 'a'; Type = 'Symlink'; LinkName = 'b' }, @{ Name = 'b'; Type = 'Symlink'; LinkName = 'a' })))
    $script:rootfs = Get-OciImage $img.Reference | Expand-OciLayers
    $script:fresh = New-TestOciLayout -Path (Join-Path $work 'fresh') -Tag t -Layer @(, (New-TestTar -Entry @($init, @{ Name = 'fresh'; Data = [guid]::NewGuid().ToString() })))
    $script:corrupt = New-TestOciLayout -Path (Join-Path $work 'corrupt') -Tag t -Compression none -Layer @(, [byte[]](1..100))
    $script:noInit = Get-OciImage (New-TestOciLayout -Path (Join-Path $work 'noinit') -Tag t -Layer @(, (New-TestTar -Entry @(@{ Name = 'x'; Data = 'x' })))).Reference | Expand-OciLayers
    $script:file = Join-Path $work 'file.txt'; Set-Content -LiteralPath $file -Value 'a file'
    $script:dir = Join-Path $work 'dir'; $null = New-Item -ItemType Directory -Path $dir; Set-Content -LiteralPath (Join-Path $dir 'f') -Value 'f'
    $script:garbage = Join-Path $work 'garbage.bin'; [IO.File]::WriteAllBytes($garbage, [byte[]](1..200))
    $script:archive = Join-Path $work 'good.cpio.gz'; $null = $rootfs | Export-Initramfs $archive
    $plain = Join-Path $work 'good.cpio'; $null = $rootfs | Export-Initramfs $plain
    $bytes = [IO.File]::ReadAllBytes($plain)
    $script:truncated = Join-Path $work 'truncated.cpio'; [IO.File]::WriteAllBytes($truncated, $bytes[0..($bytes.Length / 2)])
    $script:fifo = Join-Path $work 'fifo'; & mkfifo $fifo
    $script:fifoLayout = Join-Path $work 'fifo-layout'; $null = New-Item -ItemType Directory -Path $fifoLayout
    Set-Content -LiteralPath (Join-Path $fifoLayout 'oci-layout') -Value '{"imageLayoutVersion":"1.0.0"}'; & mkfifo (Join-Path $fifoLayout 'index.json')
    $script:cacheFile = Join-Path $work 'cache-is-a-file'; Set-Content -LiteralPath $cacheFile -Value 'x'
    # A host tree deeper than PATH_MAX: two chains of 11 directories of 200-character names,
    # one moved to the bottom of the other (no path given to the kernel is longer than PATH_MAX).
    $name = 'd' * 200
    $script:deep = Join-Path $work 'deep'
    $chain = (@($name) * 11) -join '/'
    $upper = "$deep/$chain"
    $lower = "$work/lower/$chain"
    $null = [IO.Directory]::CreateDirectory($upper); $null = [IO.Directory]::CreateDirectory($lower)
    Set-Content -LiteralPath (Join-Path $lower 'f') -Value 'deep'
    [IO.Directory]::Move((Join-Path $work 'lower'), (Join-Path $upper 'lower'))
    $gone = Join-Path $work 'gone.txt'; Set-Content -LiteralPath $gone -Value 'gone'
    $script:withGone = $rootfs | Add-InitramfsFile $gone /gone
    Remove-Item -LiteralPath $gone
    $script:initDir = $rootfs | Remove-InitramfsItem /init | Add-InitramfsFile -LiteralPath $dir /init -Recurse

    # A writer that holds a FIFO open for five seconds (killed after fifteen if no reader comes):
    # code that opens the FIFO as a plain file waits for it, then reads to an end, instead of
    # waiting forever, so a regression fails (on time) instead of hanging the suite.
    function script:Start-FifoWriter([string] $Path) {
        $null = Start-Process -FilePath timeout -ArgumentList '15', 'sh', '-c', '"exec 3>\"$1\"; sleep 5"', 'sh', "`"$Path`""
    }

    # The ErrorRecords a case ends in: written (non-terminating) or thrown (terminating).
    function script:Invoke-ErrorPath([scriptblock] $Run) {
        $records = [Collections.Generic.List[Management.Automation.ErrorRecord]]::new()
        $ErrorActionPreference = 'Continue'
        try {
            & $Run 2>&1 | ForEach-Object { if ($_ -is [Management.Automation.ErrorRecord]) { $records.Add($_) } }
        }
        catch { $records.Add($_) }
        Write-Output -NoEnumerate $records
    }
}

AfterAll {
    Pop-Location
    [Environment]::CurrentDirectory = $oldDirectory
    $env:INITRAMFSPS_CACHE = $oldCache
    & rm -rf -- $work   # holds a tree deeper than PATH_MAX
}

BeforeDiscovery {
    $script:cases = @(
        @{ Cmdlet = 'Get-OciImage'; Case = 'a malformed reference'; Id = 'InvalidReference'; Run = { Get-OciImage 'UPPER/case' } }
        @{ Cmdlet = 'Get-OciImage'; Case = 'a layout that does not exist'; Id = 'LayoutNotFound'; Run = { Get-OciImage "oci:$work/none:t" } }
        @{ Cmdlet = 'Get-OciImage'; Case = 'a tag the layout does not have'; Id = 'TagNotFound'; Run = { Get-OciImage "oci:$($img.Path):absent" } }
        @{ Cmdlet = 'Get-OciImage'; Case = 'a layout whose index.json is a FIFO'; Id = 'LayoutInvalid'; Run = { Start-FifoWriter "$fifoLayout/index.json"; Get-OciImage "oci:$($fifoLayout):t" } }
        @{ Cmdlet = 'Get-OciImage'; Case = 'a platform that is not one'; Id = 'InvalidPlatform'; Run = { Get-OciImage $img.Reference -Platform bogus } }
        @{ Cmdlet = 'Get-OciImage'; Case = 'a docker archive that is not a tar'; Id = 'ArchiveInvalid'; Run = { Get-OciImage "docker-archive:$garbage" } }
        @{ Cmdlet = 'Get-OciImage'; Case = 'a docker archive that is a FIFO'; Id = 'ArchiveNotFile'; Run = { Start-FifoWriter $fifo; Get-OciImage "docker-archive:$fifo" } }
        @{ Cmdlet = 'Get-OciImage'; Case = 'an image not in the cache, with -Offline'; Id = 'NotInCache'; Run = { Get-OciImage 'localhost:1/none:1' -Offline } }

        @{ Cmdlet = 'Expand-OciLayers'; Case = 'a layer that is not a tar'; Id = 'LayerTarCorrupt'; Run = { Get-OciImage $corrupt.Reference | Expand-OciLayers } }
        @{ Cmdlet = 'Expand-OciLayers'; Case = 'a layer larger than -MaxLayerSize'; Id = 'LayerTooLarge'; Run = { Get-OciImage $img.Reference | Expand-OciLayers -MaxLayerSize 1 } }
        @{ Cmdlet = 'Expand-OciLayers'; Case = 'a cache directory that is a file'; Id = 'CacheWriteFailed'; Run = { $i = Get-OciImage $fresh.Reference; $env:INITRAMFSPS_CACHE = $cacheFile; try { $i | Expand-OciLayers } finally { $env:INITRAMFSPS_CACHE = Join-Path $work cache } } }

        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'a host file that does not exist'; Id = 'HostFileNotFound'; Run = { $rootfs | Add-InitramfsFile "$work/none" /x } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'a wildcard that matches nothing'; Id = 'HostFileNotFound'; Run = { $rootfs | Add-InitramfsFile "$work/none*" /x } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'a path on a drive that does not exist'; Id = 'HostPathNotFileSystem'; Run = { $rootfs | Add-InitramfsFile -LiteralPath 'nope:/x' /x } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'a path of another provider'; Id = 'HostPathNotFileSystem'; Run = { $rootfs | Add-InitramfsFile -LiteralPath 'env:/PATH' /x } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'a directory without -Recurse'; Id = 'HostDirectoryNeedsRecurse'; Run = { $rootfs | Add-InitramfsFile $dir /d } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'a host tree deeper than PATH_MAX'; Id = 'HostPathTooLong'; Run = { $rootfs | Add-InitramfsFile -LiteralPath $deep /deep -Recurse } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'a destination that climbs'; Id = 'DestinationOutsideRoot'; Run = { $rootfs | Add-InitramfsFile $file /../x } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'a destination below a file'; Id = 'ParentNotDirectory'; Run = { $rootfs | Add-InitramfsFile $file /init/x } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'an owner wider than 32 bits'; Id = 'OwnerOutOfRange'; Run = { $rootfs | Add-InitramfsFile $file /x -Owner 9999999999:0 } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'input that is not a rootfs'; Id = 'InputNotRootfs'; Run = { 42 | Add-InitramfsFile $file /x } }
        @{ Cmdlet = 'Add-InitramfsFile'; Case = 'an image whose layer is corrupt'; Id = 'LayerTarCorrupt'; Run = { Get-OciImage $corrupt.Reference | Add-InitramfsFile $file /x } }

        @{ Cmdlet = 'Set-InitramfsInit'; Case = 'a script that does not exist'; Id = 'HostFileNotFound'; Run = { $rootfs | Set-InitramfsInit -Path "$work/none" } }
        @{ Cmdlet = 'Set-InitramfsInit'; Case = 'a script on a drive that does not exist'; Id = 'HostPathNotFileSystem'; Run = { $rootfs | Set-InitramfsInit -Path 'nope:/init' } }
        @{ Cmdlet = 'Set-InitramfsInit'; Case = 'no image config to take a command from'; Id = 'InitCommandMissing'; Run = { [InitramfsPS.RootFilesystem.Rootfs]::new() | Set-InitramfsInit } }
        @{ Cmdlet = 'Set-InitramfsInit'; Case = 'an /init that is a directory'; Id = 'InitIsDirectory'; Run = { $initDir | Set-InitramfsInit -Content "#!/bin/sh`n" } }
        @{ Cmdlet = 'Set-InitramfsInit'; Case = 'input that is not a rootfs'; Id = 'InputNotRootfs'; Run = { 42 | Set-InitramfsInit -Content 'x' } }

        @{ Cmdlet = 'Remove-InitramfsItem'; Case = 'a path that does not exist'; Id = 'ItemNotFound'; Run = { $rootfs | Remove-InitramfsItem /none } }
        @{ Cmdlet = 'Remove-InitramfsItem'; Case = 'a path that climbs'; Id = 'PathOutsideRoot'; Run = { $rootfs | Remove-InitramfsItem /../x } }
        @{ Cmdlet = 'Remove-InitramfsItem'; Case = 'the root'; Id = 'RootNotRemovable'; Run = { $rootfs | Remove-InitramfsItem / -Recurse } }
        @{ Cmdlet = 'Remove-InitramfsItem'; Case = 'a directory with entries, without -Recurse'; Id = 'DirectoryNotEmpty'; Run = { $rootfs | Remove-InitramfsItem /bin } }
        @{ Cmdlet = 'Remove-InitramfsItem'; Case = 'a pattern with ..'; Id = 'PatternInvalid'; Run = { $rootfs | Remove-InitramfsItem '/*/../x' } }
        @{ Cmdlet = 'Remove-InitramfsItem'; Case = 'input that is not a rootfs'; Id = 'InputNotRootfs'; Run = { 42 | Remove-InitramfsItem /x } }
        @{ Cmdlet = 'Remove-InitramfsItem'; Case = 'an image whose layer is corrupt'; Id = 'LayerTarCorrupt'; Run = { Get-OciImage $corrupt.Reference | Remove-InitramfsItem /x } }

        @{ Cmdlet = 'Get-InitramfsItem'; Case = 'a path that does not exist'; Id = 'ItemNotFound'; Run = { $rootfs | Get-InitramfsItem /none } }
        @{ Cmdlet = 'Get-InitramfsItem'; Case = 'a path with a NUL'; Id = 'PathInvalid'; Run = { $rootfs | Get-InitramfsItem "/a`0b" } }
        @{ Cmdlet = 'Get-InitramfsItem'; Case = 'a path through a symlink loop'; Id = 'SymlinkLoop'; Run = { $rootfs | Get-InitramfsItem /a/x } }
        @{ Cmdlet = 'Get-InitramfsItem'; Case = 'input that is not a rootfs'; Id = 'InputNotRootfs'; Run = { 42 | Get-InitramfsItem } }
        @{ Cmdlet = 'Get-InitramfsItem'; Case = 'an image whose layer is corrupt'; Id = 'LayerTarCorrupt'; Run = { Get-OciImage $corrupt.Reference | Get-InitramfsItem } }

        @{ Cmdlet = 'Export-Initramfs'; Case = 'a rootfs with nothing to run'; Id = 'InitMissing'; Run = { $noInit | Export-Initramfs "$work/out.cpio" } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'a gzip level out of range'; Id = 'CompressionLevelInvalid'; Run = { $rootfs | Export-Initramfs "$work/out.cpio.gz" -CompressionLevel 99 } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'a directory that does not exist'; Id = 'OutputDirectoryMissing'; Run = { $rootfs | Export-Initramfs "$work/none/out.cpio" } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'an output that is a directory'; Id = 'ExportWriteFailed'; Run = { $rootfs | Export-Initramfs $dir } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'a directory no file can be made in'; Id = 'ExportWriteFailed'; Run = { $rootfs | Export-Initramfs /proc/out.cpio } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'an output path of another provider'; Id = 'OutputPathNotFileSystem'; Run = { $rootfs | Export-Initramfs env:/out.cpio } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'an output path on a drive that does not exist'; Id = 'OutputPathNotFileSystem'; Run = { $rootfs | Export-Initramfs nope:/out.cpio } }
        @{ Cmdlet = 'Export-Initramfs'; Case = '-NoClobber and a file that exists'; Id = 'OutputExists'; Run = { $rootfs | Export-Initramfs $file -NoClobber } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'two rootfs for one file'; Id = 'MultipleInputs'; Run = { $rootfs, $rootfs | Export-Initramfs "$work/two.cpio" } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'a SOURCE_DATE_EPOCH that is not a number'; Id = 'SourceDateEpochInvalid'; Run = { $env:SOURCE_DATE_EPOCH = 'soon'; try { $rootfs | Export-Initramfs "$work/epoch.cpio" } finally { $env:SOURCE_DATE_EPOCH = $null } } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'a host file removed since it was added'; Id = 'HostFileChanged'; Run = { $withGone | Export-Initramfs "$work/gone.cpio" } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'a name longer than PATH_MAX'; Id = 'EntryNameTooLong'; Run = { $rootfs | Add-InitramfsFile $file ('/long' * 900) | Export-Initramfs "$work/long.cpio" -WarningAction SilentlyContinue } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'input that is not a rootfs'; Id = 'InputNotRootfs'; Run = { 42 | Export-Initramfs "$work/int.cpio" } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'an image whose layer is corrupt'; Id = 'LayerTarCorrupt'; Run = { Get-OciImage $corrupt.Reference | Export-Initramfs "$work/corrupt.cpio" } }

        @{ Cmdlet = 'Import-Initramfs'; Case = 'an archive that does not exist'; Id = 'ArchiveNotFound'; Run = { Import-Initramfs -LiteralPath "$work/none.cpio" } }
        @{ Cmdlet = 'Import-Initramfs'; Case = 'a wildcard that matches nothing'; Id = 'ArchiveNotFound'; Run = { Import-Initramfs "$work/none*.cpio" } }
        @{ Cmdlet = 'Import-Initramfs'; Case = 'a file that is not an archive'; Id = 'ArchiveInvalid'; Run = { Import-Initramfs -LiteralPath $garbage } }
        @{ Cmdlet = 'Import-Initramfs'; Case = 'a truncated archive'; Id = 'ArchiveTruncated'; Run = { Import-Initramfs -LiteralPath $truncated } }
        @{ Cmdlet = 'Import-Initramfs'; Case = 'a directory'; Id = 'ArchiveNotFile'; Run = { Import-Initramfs -LiteralPath $dir } }
        @{ Cmdlet = 'Import-Initramfs'; Case = 'a FIFO'; Id = 'ArchiveNotFile'; Run = { Start-FifoWriter $fifo; Import-Initramfs -LiteralPath $fifo } }
        @{ Cmdlet = 'Import-Initramfs'; Case = 'more than -MaxSize'; Id = 'ArchiveTooLarge'; Run = { Import-Initramfs -LiteralPath $archive -MaxSize 10 } }
        @{ Cmdlet = 'Import-Initramfs'; Case = 'a path on a drive that does not exist'; Id = 'ArchivePathNotFileSystem'; Run = { Import-Initramfs -LiteralPath nope:/x.cpio } }
        @{ Cmdlet = 'Import-Initramfs'; Case = 'a path of another provider'; Id = 'ArchivePathNotFileSystem'; Run = { Import-Initramfs -LiteralPath env:/PATH } }

        @{ Cmdlet = 'Test-Initramfs'; Case = 'input that is not a rootfs'; Id = 'InputNotRootfs'; Run = { Test-Initramfs -InputObject 42 } }
        @{ Cmdlet = 'Test-Initramfs'; Case = 'an archive that does not exist'; Id = 'ArchiveNotFound'; Run = { Test-Initramfs -LiteralPath "$work/none.cpio" } }
        @{ Cmdlet = 'Test-Initramfs'; Case = 'a file that is not an archive'; Id = 'ArchiveInvalid'; Run = { Test-Initramfs -LiteralPath $garbage } }
        @{ Cmdlet = 'Test-Initramfs'; Case = 'a FIFO'; Id = 'ArchiveNotFile'; Run = { Start-FifoWriter $fifo; Test-Initramfs -LiteralPath $fifo } }
        @{ Cmdlet = 'Test-Initramfs'; Case = 'a path on a drive that does not exist'; Id = 'ArchivePathNotFileSystem'; Run = { Test-Initramfs -LiteralPath nope:/x.cpio } }
        @{ Cmdlet = 'Test-Initramfs'; Case = 'an image whose layer is corrupt'; Id = 'LayerTarCorrupt'; Run = { Get-OciImage $corrupt.Reference | Test-Initramfs } }

        @{ Cmdlet = 'Compare-Initramfs'; Case = 'an input that is neither rootfs, image nor path'; Id = 'CompareInputInvalid'; Run = { Compare-Initramfs 42 $rootfs } }
        @{ Cmdlet = 'Compare-Initramfs'; Case = 'an archive that does not exist'; Id = 'ArchiveNotFound'; Run = { Compare-Initramfs "$work/none.cpio" $rootfs } }
        @{ Cmdlet = 'Compare-Initramfs'; Case = 'a wildcard naming several files'; Id = 'CompareInputInvalid'; Run = { Compare-Initramfs "$work/good.*" $rootfs } }
        @{ Cmdlet = 'Compare-Initramfs'; Case = 'a file that is not an archive'; Id = 'ArchiveInvalid'; Run = { Compare-Initramfs $garbage $rootfs } }
        @{ Cmdlet = 'Compare-Initramfs'; Case = 'a FIFO'; Id = 'ArchiveNotFile'; Run = { Start-FifoWriter $fifo; Compare-Initramfs $fifo $rootfs } }
        @{ Cmdlet = 'Compare-Initramfs'; Case = 'a path on a drive that does not exist'; Id = 'ArchivePathNotFileSystem'; Run = { Compare-Initramfs nope:/x.cpio $rootfs } }
        @{ Cmdlet = 'Compare-Initramfs'; Case = 'an image whose layer is corrupt'; Id = 'LayerTarCorrupt'; Run = { Compare-Initramfs (Get-OciImage $corrupt.Reference) $rootfs } }

        # -WhatIf: nothing is booted even if a check were missed.
        @{ Cmdlet = 'Start-InitramfsVM'; Case = 'an -Until that is not a regular expression'; Id = 'UntilInvalid'; Run = { Start-InitramfsVM -Path $archive -Until '(' -WhatIf } }
        @{ Cmdlet = 'Start-InitramfsVM'; Case = 'an archive that does not exist'; Id = 'ArchiveNotFound'; Run = { Start-InitramfsVM -Path "$work/none.cpio" -WhatIf } }
        @{ Cmdlet = 'Start-InitramfsVM'; Case = 'a kernel that does not exist'; Id = 'KernelNotFound'; Run = { Start-InitramfsVM -Path $archive -Kernel "$work/none" -WhatIf } }
        @{ Cmdlet = 'Start-InitramfsVM'; Case = 'a kernel that is a FIFO'; Id = 'KernelNotFound'; Run = { Start-FifoWriter $fifo; Start-InitramfsVM -Path $archive -Kernel $fifo -WhatIf } }
        @{ Cmdlet = 'Start-InitramfsVM'; Case = 'a kernel on a drive that does not exist'; Id = 'HostPathNotFileSystem'; Run = { Start-InitramfsVM -Path $archive -Kernel nope:/vmlinuz -WhatIf } }
        @{ Cmdlet = 'Start-InitramfsVM'; Case = 'input that is not a rootfs'; Id = 'InputNotRootfs'; Run = { 42 | Start-InitramfsVM -WhatIf } }
        @{ Cmdlet = 'Test-Initramfs'; Case = 'a kernel that does not exist'; Id = 'KernelNotFound'; Run = { $rootfs | Test-Initramfs -Kernel "$work/none" } }
        @{ Cmdlet = 'Export-Initramfs'; Case = 'a kernel on a drive that does not exist'; Id = 'HostPathNotFileSystem'; Run = { $rootfs | Export-Initramfs "$work/kernel.cpio" -Kernel nope:/vmlinuz } }

        # Port 1 on this machine: nothing listens, so a case that got as far as the registry fails RegistryUnavailable.
        @{ Cmdlet = 'Publish-Initramfs'; Case = 'an archive that does not exist'; Id = 'ArchiveNotFound'; Run = { Publish-Initramfs localhost:1/app:1 "$work/none.cpio" } }
        @{ Cmdlet = 'Publish-Initramfs'; Case = 'a file that is not an archive'; Id = 'ArchiveInvalid'; Run = { Publish-Initramfs localhost:1/app:1 -LiteralPath $garbage } }
        @{ Cmdlet = 'Publish-Initramfs'; Case = 'a path of another provider'; Id = 'ArchivePathNotFileSystem'; Run = { Publish-Initramfs localhost:1/app:1 -LiteralPath env:/PATH } }
        @{ Cmdlet = 'Publish-Initramfs'; Case = 'a reference with a digest'; Id = 'PublishReferenceInvalid'; Run = { Publish-Initramfs "localhost:1/app@sha256:$('a' * 64)" $archive } }
        @{ Cmdlet = 'Publish-Initramfs'; Case = 'a kernel that does not exist'; Id = 'HostFileNotFound'; Run = { Publish-Initramfs localhost:1/app:1 $archive -Kernel "$work/none" } }
        @{ Cmdlet = 'Publish-Initramfs'; Case = 'input that is not a rootfs'; Id = 'InputNotRootfs'; Run = { 42 | Publish-Initramfs localhost:1/app:1 } }
        @{ Cmdlet = 'Publish-Initramfs'; Case = 'a registry that is not there'; Id = 'RegistryUnavailable'; Run = { Publish-Initramfs localhost:1/app:1 $archive } }
        @{ Cmdlet = 'Save-Initramfs'; Case = 'a reference that is not a registry'; Id = 'ReferenceNotRegistry'; Run = { Save-Initramfs $img.Reference "$work/saved.cpio.zst" } }
        @{ Cmdlet = 'Save-Initramfs'; Case = 'a reference that cannot be parsed'; Id = 'InvalidReference'; Run = { Save-Initramfs 'UPPER/Case:x' "$work/saved.cpio.zst" } }
        @{ Cmdlet = 'Save-Initramfs'; Case = 'an output path of another provider'; Id = 'OutputPathNotFileSystem'; Run = { Save-Initramfs 127.0.0.1:1/a/b:c env:/out.cpio } }
        @{ Cmdlet = 'Save-Initramfs'; Case = 'a directory that does not exist'; Id = 'OutputDirectoryMissing'; Run = { Save-Initramfs 127.0.0.1:1/a/b:c "$work/none/out.cpio" } }
        @{ Cmdlet = 'Save-Initramfs'; Case = 'an output that is a directory'; Id = 'OutputIsDirectory'; Run = { Save-Initramfs 127.0.0.1:1/a/b:c $dir } }
        @{ Cmdlet = 'Save-Initramfs'; Case = 'a file that exists, without -Force'; Id = 'OutputExists'; Run = { Save-Initramfs 127.0.0.1:1/a/b:c $file } }
        @{ Cmdlet = 'Save-Initramfs'; Case = 'one path for the archive and the kernel'; Id = 'KernelPathIsArchivePath'; Run = { Save-Initramfs 127.0.0.1:1/a/b:c "$work/same" -KernelPath "$work/same" } }
        @{ Cmdlet = 'Find-Initramfs'; Case = 'an image that is not in a registry'; Id = 'ReferenceNotRegistry'; Run = { Find-Initramfs $img.Reference } }
        @{ Cmdlet = 'Find-Initramfs'; Case = 'a platform that is not one'; Id = 'InvalidPlatform'; Run = { Find-Initramfs 127.0.0.1:1/a/b:c -Platform 'no/such/thing/here' } }

        @{ Cmdlet = 'Clear-OciCache'; Case = 'a digest that is not one'; Id = 'InvalidDigest'; Run = { Clear-OciCache -Digest nope -Confirm:$false } }
        @{ Cmdlet = 'Clear-OciCache'; Case = 'a digest of an unknown algorithm'; Id = 'InvalidDigest'; Run = { Clear-OciCache -Digest "md5:$('a' * 32)" -Confirm:$false } }
    )
}

Describe 'The module''s error ids' {
    It 'are read from the source' {
        $ModuleIds.Count | Should -BeGreaterThan 80
        foreach ($id in 'LayoutNotFound', 'InputNotRootfs', 'PathOutsideRoot', 'DestinationInvalid', 'LibraryMissing', 'InitMissing', 'HostPathTooLong') {
            $ModuleIds | Should -Contain $id
        }
    }

    It 'the table covers every exported cmdlet but Get-OciCache, which has no error a user can cause' -ForEach @{ Covered = @($cases.Cmdlet) } {
        $exported = @((Get-Command -Module InitramfsPS -CommandType Cmdlet).Name | Where-Object { $_ -ne 'Get-OciCache' })
        $exported | Where-Object { $_ -notin $Covered } | Should -BeNullOrEmpty
    }
}

Describe 'Error paths' {
    It '<Cmdlet>: <Case> is <Id>' -ForEach $cases {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $records = Invoke-ErrorPath $Run
        if ($Case -match 'FIFO') {
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 4 -Because 'a FIFO is never opened in a way that waits for a writer'
        }
        $records.Count | Should -BeGreaterThan 0 -Because 'the case fails'
        foreach ($r in $records) {
            $id = ($r.FullyQualifiedErrorId -split ',')[0]
            $ModuleIds | Should -Contain $id -Because "every error has one of the module's ids, not '$($r.FullyQualifiedErrorId)' ($($r.Exception.GetType().FullName): $($r.Exception.Message))"
            $r.CategoryInfo.Category | Should -Not -Be 'NotSpecified' -Because $r.FullyQualifiedErrorId
        }
        $records[0].FullyQualifiedErrorId | Should -BeLike "$Id,*" -Because $records[0].Exception.Message
    }

    It 'an unclosed [ in a pattern is a literal character, not an exception (<Cmdlet>)' -ForEach @(
        @{ Cmdlet = 'Get-InitramfsItem'; Run = { $rootfs | Get-InitramfsItem '/[' } }
        @{ Cmdlet = 'Remove-InitramfsItem'; Run = { $rootfs | Remove-InitramfsItem '/bin/sh[' } }
    ) {
        Invoke-ErrorPath $Run | Should -BeNullOrEmpty -Because 'a pattern that matches nothing is not an error'
    }

    It 'Get-OciCache -Verify says a FIFO named like a blob is not valid, and does not wait for it' {
        $cache = Join-Path $work 'fifo-cache'
        $null = New-Item -ItemType Directory -Path (Join-Path $cache 'blobs/sha256')
        & mkfifo (Join-Path $cache "blobs/sha256/$('f' * 64)")
        $result = Invoke-ChildPwsh -TimeoutSeconds 60 -Environment @{ INITRAMFSPS_CACHE = $cache } -Command @"
Import-Module '$($ModulePath.Replace("'", "''"))'
Get-OciCache -Verify -WarningAction SilentlyContinue | ForEach-Object { "`$(`$_.Digest) `$(`$_.Valid)" }
"@
        $result.Output | Should -Match "sha256:$('f' * 64) False"
    }
}
