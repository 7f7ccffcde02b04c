# Every byte read into an archive or a rootfs is checked at use against what was verified when it
# entered the module: the cached tars of compressed layers (block digests in their index), an
# uncompressed layer read in place from an OCI layout or from the cache, the files of an imported
# archive, and the heads the inspector reads. Each case edits bytes after they were verified,
# keeping the file's length (which the older check would have caught).

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $script:savedCache = $env:INITRAMFSPS_CACHE

    # Random bytes that span several blocks, with a marker inside to edit.
    $random = [byte[]]::new(300KB); [System.Random]::new(11).NextBytes($random)
    $marker = [Text.Encoding]::ASCII.GetBytes('MARKER-IN-THE-BIG-FILE')
    [Array]::Copy($marker, 0, $random, 200KB, $marker.Length)
    $script:tar = New-TestTar -Entry @(
        @{ Name = 'etc/'; Type = 'Dir' }
        @{ Name = 'etc/hello'; Data = "hello MARKER-IN-A-SMALL-FILE`n" }
        @{ Name = 'init'; Data = "#!/init`necho MARKER-INIT`n"; Mode = '0755' }
        @{ Name = 'usr/'; Type = 'Dir' }
        @{ Name = 'usr/big.bin'; Data = $random }
    )

    # Overwrites the first occurrence of $Find in the file with $Replace, of the same length.
    function script:Edit-SameLength([string] $Path, [string] $Find, [string] $Replace) {
        $bytes = [IO.File]::ReadAllBytes($Path)
        $needle = [Text.Encoding]::ASCII.GetBytes($Find)
        $with = [Text.Encoding]::ASCII.GetBytes($Replace)
        if ($needle.Length -ne $with.Length) { throw 'not the same length' }
        $at = [Text.Encoding]::Latin1.GetString($bytes).IndexOf([Text.Encoding]::Latin1.GetString($needle), [StringComparison]::Ordinal)
        if ($at -lt 0) { throw "'$Find' is not in '$Path'" }
        $length = $bytes.Length
        $stream = [IO.File]::Open($Path, 'Open', 'Write', 'ReadWrite')
        try { $stream.Position = $at; $stream.Write($with, 0, $with.Length) } finally { $stream.Dispose() }
        (Get-Item -LiteralPath $Path).Length | Should -Be $length
    }

    # Runs an export that must fail; returns its one error record and checks that no file was left.
    function script:Assert-ExportFails($Rootfs, [string] $Out, [string] $Id) {
        $err = $null
        $report = $Rootfs | Export-Initramfs $Out -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
        $report | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        Test-Path -LiteralPath $Out | Should -BeFalse
        @(Get-ChildItem -LiteralPath (Split-Path $Out) -Filter '*.partial' -Force) | Should -BeNullOrEmpty
        $err[0]
    }

    function script:Use-NewCache {
        $env:INITRAMFSPS_CACHE = Join-Path $work "cache-$([guid]::NewGuid().ToString('N'))"
        $env:INITRAMFSPS_CACHE
    }
}

AfterAll {
    $env:INITRAMFSPS_CACHE = $savedCache
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'A cached decompressed layer edited after expansion' {
    BeforeEach {
        $cache = Use-NewCache
        $layout = New-TestOciLayout -Path (Join-Path $work "gz-$([guid]::NewGuid().ToString('N'))") -Layer @(, $tar) -Compression gzip
        $diff = $layout.DiffIds[0]
        $cachedTar = Join-Path $cache "blobs/sha256/$($diff.Substring(7))"
        $index = Join-Path $cache "index/sha256/$($diff.Substring(7))"
        $rootfs = Get-OciImage $layout.Reference | Expand-OciLayers
        $good = $rootfs | Export-Initramfs (Join-Path $work 'good.cpio')
        $out = Join-Path (New-TestDirectory) 'out.cpio.zst'
    }

    It 'stops the export of a rootfs held in a variable with CacheCorrupt, removes the entry, and the next export re-derives it' -ForEach @(
        @{ Find = 'MARKER-IN-A-SMALL-FILE'; Replace = 'MARKER-IN-A-SMALL-FILx' }
        @{ Find = 'MARKER-IN-THE-BIG-FILE'; Replace = 'MARKER-IN-THE-BIG-FILx' }
    ) {
        Test-Path $cachedTar | Should -BeTrue
        Edit-SameLength $cachedTar $Find $Replace
        $e = Assert-ExportFails $rootfs $out 'CacheCorrupt'
        "$($e.TargetObject)" | Should -Be $diff
        $e.Exception.Message | Should -BeLike "*$diff*"
        Test-Path $cachedTar | Should -BeFalse -Because 'the damaged entry is removed'
        Test-Path $index | Should -BeFalse
        Test-Path (Join-Path $cache "used/sha256/$($diff.Substring(7))") | Should -BeFalse -Because 'its record of use goes with it, as when the budget evicts it'

        $again = Get-OciImage $layout.Reference | Export-Initramfs ($out -replace '\.zst$', '')
        $again.Sha256 | Should -Be $good.Sha256
        Test-Path $cachedTar | Should -BeTrue
    }

    It 'stops a new expansion that loads the layer index too' {
        Edit-SameLength $cachedTar 'MARKER-IN-A-SMALL-FILE' 'MARKER-IN-A-SMALL-FILx'
        $e = Assert-ExportFails (Get-OciImage $layout.Reference) $out 'CacheCorrupt'
        "$($e.TargetObject)" | Should -Be $diff
        Test-Path $cachedTar | Should -BeFalse
        (Get-OciImage $layout.Reference | Export-Initramfs ($out -replace '\.zst$', '')).Sha256 | Should -Be $good.Sha256
    }

    It 'stops Test-Initramfs, which reads only the head of /init, before it trusts the edited #! line' {
        Edit-SameLength $cachedTar '#!/init' '#!/nope'
        $err = $null
        $findings = $rootfs | Test-Initramfs -ErrorVariable err -ErrorAction SilentlyContinue
        $findings | Where-Object Id -EQ 'InitInterpreterMissing' | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'CacheCorrupt,*'
        Test-Path $cachedTar | Should -BeFalse
    }

    It 'does not trust an index of the older format: the tar is hashed whole and decompressed again' {
        $bytes = [IO.File]::ReadAllBytes($index)
        $text = [Text.Encoding]::Latin1.GetString($bytes)
        $at = $text.IndexOf('InitramfsPS layer index ', [StringComparison]::Ordinal)
        $at | Should -Be 1
        $bytes[$at + 'InitramfsPS layer index '.Length] = [byte][char]'1'
        [IO.File]::WriteAllBytes($index, $bytes)
        Edit-SameLength $cachedTar 'MARKER-IN-A-SMALL-FILE' 'MARKER-IN-A-SMALL-FILx'
        (Get-OciImage $layout.Reference | Export-Initramfs ($out -replace '\.zst$', '')).Sha256 | Should -Be $good.Sha256
        [Text.Encoding]::Latin1.GetString([IO.File]::ReadAllBytes($cachedTar)) | Should -Not -BeLike '*SMALL-FILx*'
    }
}

Describe 'An edited layer index' {
    It 'is not trusted: a mode made setuid in it is ignored, the tar is hashed whole and the index written again' {
        Use-NewCache | Out-Null
        $layout = New-TestOciLayout -Path (Join-Path $work "idx-$([guid]::NewGuid().ToString('N'))") -Layer @(, $tar)
        $index = Join-Path $env:INITRAMFSPS_CACHE "index/sha256/$($layout.DiffIds[0].Substring(7))"
        (Get-OciImage $layout.Reference | Expand-OciLayers).GetEntry('/etc/hello').OctalMode | Should -Be '0644'
        $bytes = [IO.File]::ReadAllBytes($index)
        $at = [Text.Encoding]::Latin1.GetString($bytes).IndexOf('/etc/hello', [StringComparison]::Ordinal)
        $at | Should -BeGreaterThan 0
        # After the path: the type, no hardlink, an empty link name, the type flag, then the mode.
        $mode = $at + '/etc/hello'.Length + 4
        [BitConverter]::ToInt32($bytes, $mode) | Should -Be 0x1A4
        $bytes[$mode + 1] = 0x09
        [IO.File]::WriteAllBytes($index, $bytes)
        (Get-OciImage $layout.Reference | Expand-OciLayers).GetEntry('/etc/hello').OctalMode | Should -Be '0644'
        [BitConverter]::ToInt32([IO.File]::ReadAllBytes($index), $mode) | Should -Be 0x1A4 -Because 'the index was written again'
    }
}

Describe 'An uncompressed layer read in place' {
    It 'in an OCI layout, edited after Expand-OciLayers: LayerContentChanged naming the blob, and the layout is left alone' {
        Use-NewCache | Out-Null
        $layout = New-TestOciLayout -Path (Join-Path $work 'plain-layout') -Layer @(, $tar) -Compression none
        $blob = Join-Path $layout.Path "blobs/sha256/$($layout.LayerDigests[0].Substring(7))"
        $rootfs = Get-OciImage $layout.Reference | Expand-OciLayers
        $good = $rootfs | Export-Initramfs (Join-Path $work 'plain-good.cpio')
        $original = [IO.File]::ReadAllBytes($blob)
        Edit-SameLength $blob 'MARKER-IN-THE-BIG-FILE' 'MARKER-IN-THE-BIG-FILx'
        $out = Join-Path (New-TestDirectory) 'out.cpio'
        $e = Assert-ExportFails $rootfs $out 'LayerContentChanged'
        "$($e.TargetObject)" | Should -Be $layout.LayerDigests[0]
        $e.Exception.Message | Should -BeLike "*$($layout.LayerDigests[0])*"
        Test-Path $blob | Should -BeTrue -Because "a layout is the user's; the module never deletes from it"

        [IO.File]::WriteAllBytes($blob, $original)
        ($rootfs | Export-Initramfs $out).Sha256 | Should -Be $good.Sha256
    }

    It 'from a docker archive (a blob of the cache): CacheCorrupt, the blob removed, and a new import works' {
        Use-NewCache | Out-Null
        $archive = New-TestDockerArchive -Path (Join-Path $work 'saved.tar') -Layer @(, $tar)
        $image = Get-OciImage "docker-archive:$($archive.Path)"
        $rootfs = $image | Expand-OciLayers
        $good = $rootfs | Export-Initramfs (Join-Path $work 'docker-good.cpio')
        $blob = Join-Path $env:INITRAMFSPS_CACHE "blobs/sha256/$($image.Layers[0].Digest.Hex)"
        Edit-SameLength $blob 'MARKER-IN-A-SMALL-FILE' 'MARKER-IN-A-SMALL-FILx'
        $out = Join-Path (New-TestDirectory) 'out.cpio'
        $e = Assert-ExportFails $rootfs $out 'CacheCorrupt'
        "$($e.TargetObject)" | Should -Be $image.Layers[0].Digest.ToString()
        Test-Path $blob | Should -BeFalse
        (Get-OciImage "docker-archive:$($archive.Path)" | Export-Initramfs $out).Sha256 | Should -Be $good.Sha256
    }
}

Describe 'An imported archive' {
    BeforeAll {
        Use-NewCache | Out-Null
        $layout = New-TestOciLayout -Path (Join-Path $work 'import-src') -Layer @(, $tar)
        $script:source = Get-OciImage $layout.Reference | Expand-OciLayers
    }

    It 'edited after Import-Initramfs (a plain .cpio): ArchiveChanged naming the archive' {
        $archive = Join-Path $work 'plain.cpio'
        $null = $source | Export-Initramfs $archive
        $imported = Import-Initramfs $archive
        Edit-SameLength $archive 'MARKER-IN-THE-BIG-FILE' 'MARKER-IN-THE-BIG-FILx'
        $e = Assert-ExportFails $imported (Join-Path (New-TestDirectory) 'out.cpio') 'ArchiveChanged'
        "$($e.TargetObject)" | Should -Be $archive
    }

    It 'whose decompressed part in the cache is edited (a .cpio.zst): CacheCorrupt, the part removed, and a new import works' {
        $archive = Join-Path $work 'packed.cpio.zst'
        $null = $source | Export-Initramfs $archive
        $imported = Import-Initramfs $archive
        $part = $imported.GetEntry('/etc/hello').Content.FilePath
        $part | Should -BeLike "$($env:INITRAMFSPS_CACHE)*"
        Edit-SameLength $part 'MARKER-IN-A-SMALL-FILE' 'MARKER-IN-A-SMALL-FILx'
        $out = Join-Path (New-TestDirectory) 'out.cpio'
        $null = Assert-ExportFails $imported $out 'CacheCorrupt'
        Test-Path $part | Should -BeFalse
        $again = Import-Initramfs $archive
        (Compare-Initramfs $source $again | Where-Object Change -NE 'Equal' | Where-Object Path -NotIn '/dev', '/dev/console', '/proc', '/sys', '/tmp', '/run') | Should -BeNullOrEmpty
        Test-Path -LiteralPath $out | Should -BeFalse
        $null = $again | Export-Initramfs $out
    }
}

Describe 'The cost of checking' {
    It 'reads and hashes each block of a cached layer once in an export' {
        # Names in the order of the export (as image builders write them), files of up to 10 KB
        # sharing blocks, and a file of many blocks.
        Use-NewCache | Out-Null
        $many = @(1..400 | ForEach-Object { @{ Name = 'f/{0:d3}' -f $_; Data = "file $_ " * (($_ % 50) * 20) } })
        $layer = New-TestTar -Entry (@(@{ Name = 'big.bin'; Data = $random }, @{ Name = 'f/'; Type = 'Dir' }) + $many + @(@{ Name = 'init'; Data = "#!/init`n"; Mode = '0755' }))
        $layout = New-TestOciLayout -Path (Join-Path $work 'cost') -Layer @(, $layer)
        $rootfs = Get-OciImage $layout.Reference | Expand-OciLayers
        function Get-ReadBytes { [long]((@(Get-Content /proc/self/io) -match '^rchar:')[0] -replace '\D', '') }
        # What the checks before the copy hash (the heads of /init and of the programs, each check
        # in a read session of its own), measured on their own with Test-Initramfs.
        $hashed = (Get-EngineValue InitramfsPS.RootFilesystem.ContentReader BytesHashed)
        $null = $rootfs | Test-Initramfs
        $checks = (Get-EngineValue InitramfsPS.RootFilesystem.ContentReader BytesHashed) - $hashed
        $checks | Should -BeLessOrEqual (8 * (Get-EngineValue InitramfsPS.RootFilesystem.BlockDigests BlockSize))

        $before = Get-ReadBytes
        $hashed = (Get-EngineValue InitramfsPS.RootFilesystem.ContentReader BytesHashed)
        $null = $rootfs | Export-Initramfs (Join-Path $work 'cost.cpio')
        $read = (Get-ReadBytes) - $before
        $copy = (Get-EngineValue InitramfsPS.RootFilesystem.ContentReader BytesHashed) - $hashed - $checks
        $data = ($rootfs.GetEntries() | Where-Object Type -EQ File | Measure-Object Size -Sum).Sum
        $copy | Should -BeGreaterOrEqual $data
        $copy | Should -BeLessOrEqual $layer.Length -Because 'each block of the layer is hashed at most once by the copy'
        $read | Should -BeLessThan ($layer.Length + $checks + 256KB) -Because 'and read once'
    }
}
