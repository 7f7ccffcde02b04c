# Hostile and malformed images (issue 7, parts 1-3): no image can make the module touch anything
# outside its rootfs, and every malformed input is one clear error, never an unhandled exception
# or a hang.
#  - a table of hostile layers modelled on containerd's archive breakout tests, one case each:
#    refused with a stable error id, or confined inside the rootfs (checked in the exported
#    archive, read back by the tests' own cpio reader);
#  - a sentinel directory that escape attempts aim at, and well-known host files, are unchanged
#    (path, size, mtime, hash) after every case;
#  - malformed inputs: truncated gzip/zstd/tar, checksum errors, sizes past the blob, bad JSON,
#    wrong digests, missing platforms, a `docker save` archive missing a layer;
#  - decompression bombs stop at -MaxLayerSize, with memory bounded and nothing left in the cache.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory -Prefix 'hostile'
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    $script:n = 0

    # The sentinel area escape attempts aim at, and well-known host files.
    $script:Outside = Join-Path $work 'outside'
    $null = New-Item -ItemType Directory -Path $Outside
    Set-Content -LiteralPath (Join-Path $Outside 'x') -Value 'sentinel x'
    Set-Content -LiteralPath (Join-Path $Outside 'passwd') -Value 'sentinel passwd'
    $null = New-Item -ItemType Directory -Path (Join-Path $Outside 'dir')
    $script:WellKnown = @('/etc/passwd', '/etc/hostname', '/etc/hosts', '/etc/shadow', '/bin/sh') | Where-Object { Test-Path -LiteralPath $_ }

    function script:Get-SentinelSnapshot {
        $items = @(Get-ChildItem -LiteralPath $Outside -Recurse -Force | ForEach-Object {
                $len = if ($_.PSIsContainer) { -1 } else { $_.Length }
                '{0}|{1}|{2}' -f $_.FullName, $len, $_.LastWriteTimeUtc.Ticks
            })
        $hashes = foreach ($f in $WellKnown) {
            $h = try { (Get-FileHash -LiteralPath $f -Algorithm SHA256 -ErrorAction Stop).Hash } catch { 'unreadable' }
            $i = Get-Item -LiteralPath $f -Force
            '{0}|{1}|{2}|{3}' -f $f, $i.Length, $i.LastWriteTimeUtc.Ticks, $h
        }
        # nothing new directly under the test directory's parent or /tmp named like an escape
        $tmpNames = @(Get-ChildItem -LiteralPath ([IO.Path]::GetTempPath()) -Force -ErrorAction SilentlyContinue |
                Where-Object Name -Like 'hostile-escape*' | ForEach-Object FullName)
        ($items + $hashes + $tmpNames) -join "`n"
    }

    # Rewrites the name field (100 bytes) of the tar header at $Offset and fixes its checksum.
    function script:Set-TarHeaderName([byte[]] $Tar, [int] $Offset, [byte[]] $Name, [int] $Field = 0, [int] $Width = 100) {
        for ($i = 0; $i -lt $Width; $i++) { $Tar[$Offset + $Field + $i] = 0 }
        [Array]::Copy($Name, 0, $Tar, $Offset + $Field, [Math]::Min($Name.Length, $Width))
        for ($i = 148; $i -lt 156; $i++) { $Tar[$Offset + $i] = 0x20 }
        $sum = 0L
        for ($i = 0; $i -lt 512; $i++) { $sum += $Tar[$Offset + $i] }
        $ck = [Text.Encoding]::ASCII.GetBytes([Convert]::ToString($sum, 8).PadLeft(6, '0'))
        [Array]::Copy($ck, 0, $Tar, $Offset + 148, 6)
        $Tar[$Offset + 154] = 0; $Tar[$Offset + 155] = 0x20
    }

    # Builds an image from the layers (entry lists or byte[] tars), expands it and exports it.
    # Returns Error (the first ErrorRecord or $null), Rootfs, Listing (Get-CpioListing), Out.
    function script:Invoke-HostileImage([object[]] $Layers, [string] $Compression = 'gzip') {
        # a single list of entries is one layer (PowerShell unrolls the outer array of a one-layer list)
        if ($Layers[0] -is [System.Collections.IDictionary]) { $Layers = @(, $Layers) }
        $script:n++
        $tars = foreach ($l in $Layers) { if ($l -is [byte[]]) { , $l } else { , (New-TestTar -Entry $l) } }
        $img = New-TestOciLayout -Path (Join-Path $work "img$n") -Layer $tars -Compression $Compression -Tag t
        $out = Join-Path $work "out$n.cpio"
        $err = $null; $rootfs = $null; $listing = $null
        try {
            $rootfs = Get-OciImage $img.Reference -ErrorAction Stop | Expand-OciLayers -ErrorAction Stop
            $null = $rootfs | Export-Initramfs $out -NoDefaultEntries -Force -WarningAction SilentlyContinue -ErrorAction Stop
            $listing = @(Get-CpioListing $out)
        }
        catch { $err = $_ }
        if ($err) {
            $err.Exception | Should -BeOfType [InitramfsPS.Errors.InitramfsException] -Because "an expected failure, not an unhandled exception: $($err.Exception)"
            Test-Path -LiteralPath $out | Should -BeFalse
        }
        Get-ChildItem -LiteralPath $work -Filter '*.partial' -Force | Should -BeNullOrEmpty
        [pscustomobject]@{ Error = $err; Rootfs = $rootfs; Listing = $listing; Out = $out }
    }

    # Nothing in the archive outside the root, nothing below a symlink, every parent a directory.
    function script:Assert-Confined($Listing) {
        $byName = @{}
        foreach ($e in $Listing) { $byName[$e.Name] = $e }
        foreach ($e in $Listing) {
            $e.Name | Should -Not -Match '^/' -Because 'archive names are relative'
            ($e.Name -split '/') | Should -Not -Contain '..'
            $parts = $e.Name -split '/'
            for ($i = 1; $i -lt $parts.Count; $i++) {
                $parent = $parts[0..($i - 1)] -join '/'
                if ($byName.ContainsKey($parent)) { $byName[$parent].Type | Should -Be 'Dir' -Because "'$($e.Name)' lies below '$parent'" }
            }
        }
    }
    $script:Init = @{ Name = 'init'; Data = "#!/init`n"; Mode = '0755' }
    # A layout whose layer 1 is exactly $Bytes, with every digest right (only the content is bad).
    function script:New-LayoutWithLayerBytes([string] $Name, [byte[]] $Bytes, [string] $MediaType) {
        $img = New-TestOciLayout -Path (Join-Path $work $Name) -Layer @(, (New-TestTar -Entry @($Init, @{ Name = 'u'; Data = [guid]::NewGuid().ToString() }))) -Tag t
        $hex = (Get-FileHash -InputStream ([IO.MemoryStream]::new($Bytes))).Hash.ToLowerInvariant()
        [IO.File]::WriteAllBytes("$($img.Path)/blobs/sha256/$hex", $Bytes)
        $manifest = Get-Content -Raw "$($img.Path)/blobs/sha256/$($img.ManifestDigest.Substring(7))" | ConvertFrom-Json
        $manifest.layers[0].digest = "sha256:$hex"
        $manifest.layers[0].size = $Bytes.Length
        if ($MediaType) { $manifest.layers[0].mediaType = $MediaType }
        # the config's diff_id stays that of the original tar: a truncated layer cannot match it anyway
        Set-Manifest $img ($manifest | ConvertTo-Json -Depth 10 -Compress)
        $img.Reference
    }
    function script:Set-Manifest($Img, $Json) {
        $bytes = if ($Json -is [byte[]]) { $Json } else { [Text.Encoding]::UTF8.GetBytes([string]$Json) }
        $mhex = (Get-FileHash -InputStream ([IO.MemoryStream]::new($bytes))).Hash.ToLowerInvariant()
        [IO.File]::WriteAllBytes("$($Img.Path)/blobs/sha256/$mhex", $bytes)
        $index = Get-Content -Raw "$($Img.Path)/index.json" | ConvertFrom-Json
        $index.manifests[0].digest = "sha256:$mhex"
        $index.manifests[0].size = $bytes.Length
        $index | ConvertTo-Json -Depth 10 | Set-Content "$($Img.Path)/index.json"
    }
    function script:Get-Failure([string] $Reference) {
        $out = Join-Path $work "bad-$([guid]::NewGuid().ToString('N')).cpio"
        $err = $null
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $res = Get-OciImage $Reference -ErrorVariable +err -ErrorAction SilentlyContinue |
            Export-Initramfs $out -Force -WarningAction SilentlyContinue -ErrorVariable +err -ErrorAction SilentlyContinue
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 30 -Because 'a malformed input never hangs'
        $res | Should -BeNullOrEmpty
        Test-Path -LiteralPath $out | Should -BeFalse
        @($err).Count | Should -BeGreaterThan 0
        $err[0].Exception | Should -BeOfType [InitramfsPS.Errors.InitramfsException] -Because "an expected failure, not an unhandled exception: $($err[0].Exception)"
        $err[0]
    }
    $script:Tar = New-TestTar -Entry @($Init, @{ Name = 'data'; Data = [byte[]](1..255 + 1..255 + 1..255) })
    function script:Get-Compressed([string] $Kind, [byte[]] $Bytes) {
        $img = New-TestOciLayout -Path (Join-Path $work "c-$Kind-$([guid]::NewGuid().ToString('N'))") -Layer @(, $Bytes) -Compression $Kind -Tag t
        , [IO.File]::ReadAllBytes("$($img.Path)/blobs/sha256/$($img.LayerDigests[0].Substring(7))")
    }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Hostile layers' {
    BeforeEach { $script:Before = Get-SentinelSnapshot }
    AfterEach { Get-SentinelSnapshot | Should -Be $Before -Because 'no file outside the test directory changes' }

    It 'refuses <Case>: <Id>' -ForEach @(
        @{ Case = 'a .. path climbing above the root'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = '../../outside/x'; Data = 'escaped' }) } }
        @{ Case = 'a .. path climbing from inside'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = 'a/../../outside/x'; Data = 'escaped' }) } }
        @{ Case = 'a .. path to the sentinel by its absolute name'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = "../../../../../../../../..$Outside/x"; Data = 'escaped' }) } }
        @{ Case = 'a directory named ..'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = '../'; Type = 'Dir' }) } }
        @{ Case = 'a symlink named ..'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = '..'; Type = 'Symlink'; LinkName = '/' }) } }
        @{ Case = 'a symlink to / and a file through it'; Id = 'LayerEntryThroughSymlink'; Layers = { , @($Init, @{ Name = 'evil'; Type = 'Symlink'; LinkName = '/' }, @{ Name = "evil$Outside/x"; Data = 'escaped' }) } }
        @{ Case = 'a symlink to ../../.. and a file through it'; Id = 'LayerEntryThroughSymlink'; Layers = { , @($Init, @{ Name = 'evil'; Type = 'Symlink'; LinkName = '../../..' }, @{ Name = 'evil/outside/x'; Data = 'escaped' }) } }
        @{ Case = 'a symlink to the sentinel and a directory through it'; Id = 'LayerEntryThroughSymlink'; Layers = { , @($Init, @{ Name = 'evil'; Type = 'Symlink'; LinkName = $Outside }, @{ Name = 'evil/dir/'; Type = 'Dir' }) } }
        @{ Case = 'a symlink in a lower layer and a file through it in an upper layer'; Id = 'LayerEntryThroughSymlink'; Layers = { @($Init, @{ Name = 'evil'; Type = 'Symlink'; LinkName = '/' }), @(@{ Name = 'evil/etc/passwd'; Data = 'root::0:0::/:/bin/sh' }) } }
        @{ Case = 'a symlink chain and a file through it'; Id = 'LayerEntryThroughSymlink'; Layers = { , @($Init, @{ Name = 'a'; Type = 'Symlink'; LinkName = 'b' }, @{ Name = 'b'; Type = 'Symlink'; LinkName = '../..' }, @{ Name = 'a/x'; Data = 'escaped' }) } }
        @{ Case = 'a hardlink whose target climbs'; Id = 'LayerHardlinkOutsideRoot'; Layers = { , @($Init, @{ Name = 'h'; Type = 'Hardlink'; LinkName = '../../outside/passwd' }) } }
        @{ Case = 'a hardlink to the sentinel by climbing to its absolute name'; Id = 'LayerHardlinkOutsideRoot'; Layers = { , @($Init, @{ Name = 'h'; Type = 'Hardlink'; LinkName = "../../../../../../../..$Outside/passwd" }) } }
        @{ Case = 'a hardlink with an absolute target that is not in the image'; Id = 'LayerHardlinkTargetMissing'; Layers = { , @($Init, @{ Name = 'h'; Type = 'Hardlink'; LinkName = '/etc/passwd' }) } }
        @{ Case = 'a hardlink through a symlink'; Id = 'LayerHardlinkTargetMissing'; Layers = { , @($Init, @{ Name = 'evil'; Type = 'Symlink'; LinkName = '/' }, @{ Name = 'h'; Type = 'Hardlink'; LinkName = 'evil/etc/passwd' }) } }
        @{ Case = 'a hardlink to a directory'; Id = 'LayerHardlinkToDirectory'; Layers = { , @($Init, @{ Name = 'd/'; Type = 'Dir' }, @{ Name = 'h'; Type = 'Hardlink'; LinkName = 'd' }) } }
        @{ Case = 'a hardlink to the root'; Id = 'LayerHardlinkToDirectory'; Layers = { , @($Init, @{ Name = 'h'; Type = 'Hardlink'; LinkName = '/' }) } }
        @{ Case = 'a whiteout .wh.. (of ".")'; Id = 'LayerWhiteoutInvalid'; Layers = { , @($Init, @{ Name = 'etc/.wh..' }) } }
        @{ Case = 'a whiteout .wh... (of "..")'; Id = 'LayerWhiteoutInvalid'; Layers = { , @($Init, @{ Name = 'etc/.wh...' }) } }
        @{ Case = 'a whiteout .wh. (of nothing)'; Id = 'LayerWhiteoutInvalid'; Layers = { , @($Init, @{ Name = '.wh.' }) } }
        @{ Case = 'a whiteout of a climbing path'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = '../.wh.outside' }) } }
        @{ Case = 'a whiteout of a climbing path from inside'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = 'a/../../outside/.wh.x' }) } }
        @{ Case = 'an opaque whiteout above the root'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = '../.wh..wh..opq' }) } }
        @{ Case = 'a symlink named .'; Id = 'LayerEntryReplacesRoot'; Layers = { , @($Init, @{ Name = '.'; Type = 'Symlink'; LinkName = '/' }) } }
        @{ Case = 'a symlink named ./'; Id = 'LayerEntryReplacesRoot'; Layers = { , @($Init, @{ Name = './'; Type = 'Symlink'; LinkName = $Outside }) } }
        @{ Case = 'a hardlink named . to a file'; Id = 'LayerEntryReplacesRoot'; Layers = { , @($Init, @{ Name = '.'; Type = 'Hardlink'; LinkName = 'init' }) } }
        @{ Case = 'a NUL byte in a PAX path'; Id = 'LayerEntryNameInvalid'; Layers = { , @($Init, @{ Name = 'x'; Data = 'x'; Pax = @{ path = "a`0/../../outside/x" } }) } }
        @{ Case = 'a NUL byte in a PAX linkpath'; Id = 'LayerEntryNameInvalid'; Layers = { , @($Init, @{ Name = 's'; Type = 'Symlink'; LinkName = 'x'; Pax = @{ linkpath = "/etc`0passwd" } }) } }
        @{ Case = 'a symlink with an empty target'; Id = 'LayerEntryNameInvalid'; Layers = { , @($Init, @{ Name = 's'; Type = 'Symlink'; LinkName = '' }) } }
        @{ Case = 'a PAX path that climbs'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = 'harmless'; Data = 'x'; Pax = @{ path = '../../outside/x' } }) } }
        @{ Case = 'a PAX linkpath that climbs (hardlink)'; Id = 'LayerHardlinkOutsideRoot'; Layers = { , @($Init, @{ Name = 'h'; Type = 'Hardlink'; LinkName = 'init'; Pax = @{ linkpath = '../../../outside/passwd' } }) } }
        @{ Case = 'a PAX size larger than the stream'; Id = 'LayerTarCorrupt'; Layers = { , @($Init, @{ Name = 'big'; Data = 'x'; Pax = @{ size = '99999999' } }) } }
        @{ Case = 'a PAX size that is not a number'; Id = 'LayerTarCorrupt'; Layers = { , @($Init, @{ Name = 'big'; Data = 'x'; Pax = @{ size = '-1' } }) } }
        @{ Case = 'a PAX size of 0 smuggling a climbing header in the data'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = 'cover'; Data = (New-TestTar -Entry @(@{ Name = '../../outside/x'; Data = 'smuggled' }) -NoEndBlocks); Pax = @{ size = '0' } }) } }
        @{ Case = 'a global PAX path that climbs'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = 'g'; TypeFlag = 'g'; Data = "30 path=../../../outside/xyzw`n" }, @{ Name = 'victim'; Data = 'x' }) } }
        @{ Case = 'a GNU long name that climbs'; Id = 'LayerEntryOutsideRoot'; Layers = { , @($Init, @{ Name = '././@LongLink'; TypeFlag = 'L'; Data = "../../outside/x`0" }, @{ Name = 'victim'; Data = 'x' }) } }
        @{ Case = 'a GNU long link that climbs (hardlink)'; Id = 'LayerHardlinkOutsideRoot'; Layers = { , @($Init, @{ Name = '././@LongLink'; TypeFlag = 'K'; Data = "../../outside/passwd`0" }, @{ Name = 'h'; Type = 'Hardlink'; LinkName = 'init' }) } }
        @{ Case = 'an extended header with no entry after it'; Id = 'LayerTarCorrupt'; Layers = { , @($Init, @{ Name = '././@LongLink'; TypeFlag = 'L'; Data = "x`0" }) } }
        @{ Case = 'a GNU sparse file'; Id = 'LayerSparseUnsupported'; Layers = { , @($Init, @{ Name = 'sparse'; Data = 'x'; Pax = @{ 'GNU.sparse.major' = '1' } }) } }
        @{ Case = 'an unknown entry type'; Id = 'LayerEntryTypeUnsupported'; Layers = { , @($Init, @{ Name = 'z'; TypeFlag = 'Z' }) } }
        @{ Case = 'a file below a file'; Id = 'LayerParentNotDirectory'; Layers = { , @($Init, @{ Name = 'f'; Data = 'x' }, @{ Name = 'f/x'; Data = 'y' }) } }
    ) {
        $layers = & $Layers
        $r = Invoke-HostileImage $layers
        $r.Error | Should -Not -BeNullOrEmpty -Because "$Case must be refused"
        $r.Error.FullyQualifiedErrorId | Should -BeLike "$Id,*"
        $r.Error.Exception.Message | Should -Match '^layer 1 \(|^layer 2 \(|at offset'
        $r.Error.Exception.Message | Should -Not -Match '[\x00-\x08\x0b-\x1f]' -Because 'hostile names are printed escaped'
    }

    It 'refuses a name with <Case> (raw header bytes): <Id>' -ForEach @(
        @{ Case = 'invalid UTF-8'; Id = 'LayerEntryNameInvalid'; Bytes = [byte[]](0x61, 0xFF, 0xFE, 0x2F, 0x78); Field = 0; Width = 100 }
        @{ Case = 'an invalid UTF-8 symlink target'; Id = 'LayerEntryNameInvalid'; Bytes = [byte[]](0x2F, 0xC3, 0x28); Field = 157; Width = 100 }
        @{ Case = 'an overlong UTF-8 encoding of ..'; Id = 'LayerEntryNameInvalid'; Bytes = [byte[]](0xC0, 0xAE, 0xC0, 0xAE, 0x2F, 0x78); Field = 0; Width = 100 }
        @{ Case = 'an empty name'; Id = 'LayerEntryNameInvalid'; Bytes = [byte[]]@(); Field = 0; Width = 100 }
        @{ Case = 'invalid UTF-8 in the ustar prefix'; Id = 'LayerEntryNameInvalid'; Bytes = [byte[]](0x80, 0x2F, 0x61); Field = 345; Width = 155 }
    ) {
        $tar = New-TestTar -Entry @($Init, @{ Name = 'victim'; Type = 'Symlink'; LinkName = 'init' })
        Set-TarHeaderName $tar 1024 $Bytes $Field $Width
        $r = Invoke-HostileImage @(, $tar)
        $r.Error.FullyQualifiedErrorId | Should -BeLike "$Id,*"
    }

    It 'confines <Case>' -ForEach @(
        @{ Case = 'an absolute path to the root'; Layers = { , @($Init, @{ Name = "$Outside/x"; Data = 'confined' }) }; Check = {
                param($r) ($r.Listing | Where-Object Name -EQ ("$Outside/x".TrimStart('/'))).Size | Should -Be 8 } }
        @{ Case = 'an absolute path with .. that stays inside'; Layers = { , @($Init, @{ Name = '/a/../etc/passwd'; Data = 'confined' }) }; Check = {
                param($r) $r.Listing.Name | Should -Contain 'etc/passwd'; $r.Listing.Name | Should -Not -Contain 'a' } }
        @{ Case = 'a PAX path that is absolute'; Layers = { , @($Init, @{ Name = 'harmless'; Data = 'confined'; Pax = @{ path = "$Outside/x" } }) }; Check = {
                param($r) $r.Listing.Name | Should -Contain ("$Outside/x".TrimStart('/')); $r.Listing.Name | Should -Not -Contain 'harmless' } }
        @{ Case = 'a hardlink with an absolute target that is in the image'; Layers = { , @($Init, @{ Name = 'etc/passwd'; Data = 'inside' }, @{ Name = 'h'; Type = 'Hardlink'; LinkName = '/etc/passwd' }) }; Check = {
                param($r) $h = $r.Listing | Where-Object Name -EQ 'h'; $p = $r.Listing | Where-Object Name -EQ 'etc/passwd'
                $h.Ino | Should -Be $p.Ino; $h.DataSha256 ?? $p.DataSha256 | Should -Not -BeNullOrEmpty } }
        @{ Case = 'a hardlink to a symlink: links the symlink itself, never its target'; Layers = { , @($Init, @{ Name = 's'; Type = 'Symlink'; LinkName = "$Outside/passwd" }, @{ Name = 'h'; Type = 'Hardlink'; LinkName = 's' }) }; Check = {
                param($r) $h = $r.Listing | Where-Object Name -EQ 'h'
                $h.Type | Should -Be 'Symlink'; $h.LinkTarget | Should -Be "$Outside/passwd"; $h.Size | Should -Be ([Text.Encoding]::UTF8.GetByteCount("$Outside/passwd")) } }
        @{ Case = 'a hardlink to itself (skipped)'; Layers = { , @($Init, @{ Name = 'f'; Data = 'x' }, @{ Name = 'f'; Type = 'Hardlink'; LinkName = 'f' }) }; Check = {
                param($r) ($r.Listing | Where-Object Name -EQ 'f').Size | Should -Be 1 } }
        @{ Case = 'a symlink to / and to ../../.. (data, kept as written)'; Layers = { , @($Init, @{ Name = 'root'; Type = 'Symlink'; LinkName = '/' }, @{ Name = 'up'; Type = 'Symlink'; LinkName = '../../..' }) }; Check = {
                param($r) ($r.Listing | Where-Object Name -EQ 'root').LinkTarget | Should -Be '/'; ($r.Listing | Where-Object Name -EQ 'up').LinkTarget | Should -Be '../../..' } }
        @{ Case = 'a directory entry over a symlink of a lower layer (replaces it)'; Layers = { @($Init, @{ Name = 'd'; Type = 'Symlink'; LinkName = $Outside }), @(@{ Name = 'd/'; Type = 'Dir' }, @{ Name = 'd/x'; Data = 'inside' }) }; Check = {
                param($r) ($r.Listing | Where-Object Name -EQ 'd').Type | Should -Be 'Dir'; ($r.Listing | Where-Object Name -EQ 'd/x').Size | Should -Be 6 } }
        @{ Case = 'a directory entry over a symlink of the same layer (replaces it)'; Layers = { , @($Init, @{ Name = 'd'; Type = 'Symlink'; LinkName = '../..' }, @{ Name = 'd/'; Type = 'Dir' }, @{ Name = 'd/x'; Data = 'inside' }) }; Check = {
                param($r) ($r.Listing | Where-Object Name -EQ 'd').Type | Should -Be 'Dir'; ($r.Listing | Where-Object Name -EQ 'd/x').Size | Should -Be 6 } }
        @{ Case = 'a whiteout through a symlink (deletes nothing outside)'; Layers = { @($Init, @{ Name = 'evil'; Type = 'Symlink'; LinkName = $Outside }), @(@{ Name = 'evil/.wh.x' }, @{ Name = 'evil/.wh..wh..opq' }) }; Check = {
                param($r) ($r.Listing | Where-Object Name -EQ 'evil').Type | Should -Be 'Symlink' } }
        @{ Case = 'a file named / (an old-style directory entry: the root''s own metadata)'; Layers = { , @($Init, @{ Name = '/'; Data = ''; Mode = '0700' }) }; Check = {
                param($r) $r.Rootfs.GetEntry('/').Type | Should -Be 'Directory'; $r.Rootfs.GetEntry('/').Mode | Should -Be 448 } }
        @{ Case = 'a whiteout of the .wh..wh. kind (aufs bookkeeping, skipped)'; Layers = { , @($Init, @{ Name = '.wh..wh..'; Data = 'x' }, @{ Name = '.wh..wh.plnk/'; Type = 'Dir' }) }; Check = {
                param($r) @($r.Listing.Name | Where-Object { $_ -like '*.wh.*' }) | Should -BeNullOrEmpty } }
        @{ Case = 'a NUL byte in a ustar name (the name ends there)'; Layers = { , @($Init, @{ Name = "a`0/../../outside/x"; Data = 'x' }) }; Check = {
                param($r) $r.Listing.Name | Should -Contain 'a' } }
        @{ Case = 'a PAX size of 0 hiding data that is not a header'; Layers = { , @($Init, @{ Name = 'f'; Data = ([byte[]]::new(1024)); Pax = @{ size = '0' } }) }; Check = {
                param($r) ($r.Listing | Where-Object Name -EQ 'f').Size | Should -Be 0 } }
    ) {
        $r = Invoke-HostileImage (& $Layers)
        $r.Error | Should -BeNullOrEmpty -Because "$Case is confined, not refused: $($r.Error)"
        Assert-Confined $r.Listing
        & $Check $r
    }

    It 'refuses a name longer than PATH_MAX in a layer as it is parsed: LayerEntryNameTooLong' {
        # (HostileLayers.Tests.ps1 has the bounds in detail.)
        $long = (1..25 | ForEach-Object { 'd' * 200 }) -join '/'
        $r = Invoke-HostileImage @(, @($Init, @{ Name = $long; Data = 'deep' }))
        $r.Error.FullyQualifiedErrorId | Should -BeLike 'LayerEntryNameTooLong,*'
        $r.Rootfs | Should -BeNullOrEmpty
    }

    It 'holds a symlink target longer than PATH_MAX in a layer, and Export-Initramfs refuses it: SymlinkTargetTooLong' {
        $r = Invoke-HostileImage @(, @($Init, @{ Name = 's'; Type = 'Symlink'; LinkName = ('../' * 1400) + 'etc/passwd' }))
        $r.Error.FullyQualifiedErrorId | Should -BeLike 'SymlinkTargetTooLong,*'
    }

    It 'a docker save archive with hostile layer names is refused the same way' {
        $archive = Join-Path $work 'hostile-docker.tar'
        $null = New-TestDockerArchive -Path $archive -Layer @(, (New-TestTar -Entry @($Init, @{ Name = '../../outside/x'; Data = 'escaped' })))
        $err = $null
        $null = Get-OciImage "docker-archive:$archive" -ErrorAction SilentlyContinue -ErrorVariable +err | Expand-OciLayers -ErrorAction SilentlyContinue -ErrorVariable +err
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerEntryOutsideRoot,*'
    }
}

Describe 'Malformed inputs' {

    It '<Case>: <Id>' -ForEach @(
        @{ Case = 'a truncated gzip layer'; Id = 'LayerCorrupt|LayerTarCorrupt'; Make = { $g = Get-Compressed gzip $Tar; New-LayoutWithLayerBytes tgz ([byte[]]$g[0..($g.Length / 2)]) } }
        @{ Case = 'a gzip layer without its trailer'; Id = 'LayerCorrupt|LayerTarCorrupt|LayerDiffIdMismatch'; Make = { $g = Get-Compressed gzip $Tar; New-LayoutWithLayerBytes tgz2 ([byte[]]$g[0..($g.Length - 9)]) } }
        @{ Case = 'a truncated zstd layer'; Id = 'LayerCorrupt'; Make = { $z = Get-Compressed zstd $Tar; New-LayoutWithLayerBytes tzst ([byte[]]$z[0..($z.Length / 2)]) 'application/vnd.oci.image.layer.v1.tar+zstd' } }
        @{ Case = 'a truncated tar (inside a header)'; Id = 'LayerTarCorrupt'; Make = { New-LayoutWithLayerBytes ttar ([byte[]]$Tar[0..1100]) 'application/vnd.oci.image.layer.v1.tar' } }
        @{ Case = 'a truncated tar (inside the padding of an entry''s data)'; Id = 'LayerTarCorrupt|LayerDiffIdMismatch'; Make = { New-LayoutWithLayerBytes ttar2 ([byte[]]$Tar[0..700]) 'application/vnd.oci.image.layer.v1.tar' } }
        @{ Case = 'a tar header checksum error'; Id = 'LayerTarCorrupt'; Make = { (New-TestOciLayout -Path (Join-Path $work cks) -Layer @(, (New-TestTar -Entry @($Init, @{ Name = 'x'; Data = 'x'; RawChecksum = 1234 }))) -Tag t).Reference } }
        @{ Case = 'a size field larger than the blob'; Id = 'LayerTarCorrupt'; Make = { (New-TestOciLayout -Path (Join-Path $work size) -Layer @(, (New-TestTar -Entry @($Init, @{ Name = 'x'; Data = 'x'; Size = 1GB }))) -Tag t).Reference } }
        @{ Case = 'a size field that is not octal'; Id = 'LayerTarCorrupt'; Make = { $t = New-TestTar -Entry @($Init, @{ Name = 'x'; Data = 'x' }); $t[1024 + 124] = [byte][char]'9'; Set-TarHeaderName $t 1024 ([Text.Encoding]::ASCII.GetBytes('x')); (New-TestOciLayout -Path (Join-Path $work octal) -Layer @(, $t) -Tag t).Reference } }
        @{ Case = 'a layer whose bytes are not the declared compression'; Id = 'LayerCompressionMismatch'; Make = { New-LayoutWithLayerBytes mism $Tar 'application/vnd.oci.image.layer.v1.tar+gzip' } }
        @{ Case = 'a manifest that is not JSON'; Id = 'ManifestInvalid'; Make = { $img = New-TestOciLayout -Path (Join-Path $work mnj) -Layer @(, $Tar) -Tag t; Set-Manifest $img '{"schemaVersion": 2, "layers": [ not json'; $img.Reference } }
        @{ Case = 'a manifest that is JSON but not an object'; Id = 'ManifestInvalid'; Make = { $img = New-TestOciLayout -Path (Join-Path $work mna) -Layer @(, $Tar) -Tag t; Set-Manifest $img '[1,2,3]'; $img.Reference } }
        @{ Case = 'a manifest with invalid UTF-8 in a string (fuzz finding)'; Id = 'ManifestInvalid'; Make = {
                $img = New-TestOciLayout -Path (Join-Path $work mnu) -Layer @(, $Tar) -Tag t
                $m = [IO.File]::ReadAllBytes("$($img.Path)/blobs/sha256/$($img.ManifestDigest.Substring(7))")
                $i = [Text.Encoding]::ASCII.GetString($m).IndexOf('application/vnd.oci.image.manifest'); $m[$i + 3] = 0xED
                Set-Manifest $img $m; $img.Reference } }
        @{ Case = 'an index.json that is JSON but not an object (fuzz finding)'; Id = 'IndexInvalid|ManifestInvalid'; Make = { $img = New-TestOciLayout -Path (Join-Path $work inn) -Layer @(, $Tar) -Tag t; Set-Content "$($img.Path)/index.json" '5'; $img.Reference } }
        @{ Case = 'a config that is JSON but not an object (fuzz finding)'; Id = 'ManifestInvalid'; Make = { (New-TestOciLayout -Path (Join-Path $work cfn) -Layer @(, $Tar) -Tag t -ConfigJson '[1]').Reference } }
        @{ Case = 'a config whose diff_id is a number'; Id = 'InvalidDigest|DigestInvalid|ManifestInvalid'; Make = { (New-TestOciLayout -Path (Join-Path $work cfd) -Layer @(, $Tar) -Tag t -ConfigJson '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[1]}}').Reference } }
        @{ Case = 'a manifest with no config'; Id = 'ManifestInvalid'; Make = { $img = New-TestOciLayout -Path (Join-Path $work mnc) -Layer @(, $Tar) -Tag t; Set-Manifest $img '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'; $img.Reference } }
        @{ Case = 'a config whose digest does not match (same size)'; Id = 'DigestMismatch'; Make = {
                $img = New-TestOciLayout -Path (Join-Path $work cfgd) -Layer @(, $Tar) -Tag t
                $p = "$($img.Path)/blobs/sha256/$($img.ConfigDigest.Substring(7))"; $b = [IO.File]::ReadAllBytes($p)
                $i = [Array]::IndexOf($b, [byte][char]'a'); $b[$i] = [byte][char]'b'; [IO.File]::WriteAllBytes($p, $b); $img.Reference } }
        @{ Case = 'an index.json that is not JSON'; Id = 'ManifestInvalid|LayoutInvalid'; Make = { $img = New-TestOciLayout -Path (Join-Path $work inj) -Layer @(, $Tar) -Tag t; Set-Content "$($img.Path)/index.json" '{ nope'; $img.Reference } }
        @{ Case = 'an index without a matching platform'; Id = 'PlatformNotFound'; Make = {
                $a = New-TestOciLayout -Path (Join-Path $work plat) -Layer @(, $Tar) -Tag arm -Architecture arm64
                $s = New-TestOciLayout -Path (Join-Path $work plat) -Layer @(, $Tar) -Tag s390 -Architecture s390x
                (New-TestOciIndex -Path (Join-Path $work plat) -Tag multi -Manifest $a, $s).Reference } }
        @{ Case = 'a docker save archive missing a layer'; Id = 'ArchiveLayerMissing'; Make = {
                $p = Join-Path $work 'missing.tar'; $null = New-TestDockerArchive -Path $p -Layer $Tar, (New-TestTar -Entry @(@{ Name = 'y'; Data = 'y' })) -OmitLayer 1; "docker-archive:$p" } }
        @{ Case = 'a docker save archive that is not a tar'; Id = 'ArchiveInvalid'; Make = { $p = Join-Path $work 'junk.tar'; [IO.File]::WriteAllBytes($p, [byte[]](1..200)); "docker-archive:$p" } }
        @{ Case = 'a docker save archive whose manifest.json is not JSON'; Id = 'ManifestInvalid|ArchiveInvalid'; Make = {
                $d = Join-Path $work 'dsj'; $null = New-Item -ItemType Directory $d; Set-Content "$d/manifest.json" '[{"Config": '
                $p = Join-Path $work 'badmanifest.tar'; & tar -C $d -cf $p manifest.json; "docker-archive:$p" } }
    ) {
        $ref = & $Make
        $e = Get-Failure $ref
        $e.FullyQualifiedErrorId | Should -Match "^($Id),"
    }
}

Describe 'Decompression bombs' {
    It 'a gzip layer expanding to 1 GiB stops at -MaxLayerSize 64MB, memory bounded, nothing left in the cache' {
        # a tar holding one 1 GiB file of zeros, gzip-compressed as it is written: about 1 MB
        $blob = Join-Path $work 'bomb.gz'
        $fs = [IO.File]::Create($blob)
        try {
            $gz = [IO.Compression.GZipStream]::new($fs, [IO.Compression.CompressionLevel]::Optimal, $true)
            $head = New-TestTar -Entry @(@{ Name = 'zeros'; Data = 'x'; Size = 1GB }) -NoEndBlocks
            $gz.Write($head, 0, 512)
            $zeros = [byte[]]::new(4MB)
            for ($i = 0; $i -lt 256; $i++) { $gz.Write($zeros, 0, $zeros.Length) }
            $gz.Write([byte[]]::new(1024), 0, 1024)
            $gz.Dispose()
        }
        finally { $fs.Dispose() }
        $bytes = [IO.File]::ReadAllBytes($blob)
        $bytes.Length | Should -BeLessThan 4MB
        $ref = New-LayoutWithLayerBytes bomb $bytes
        $cache = Join-Path $work 'bomb-cache'
        $env:INITRAMFSPS_CACHE = $cache
        try {
            $proc = [Diagnostics.Process]::GetCurrentProcess()
            [GC]::Collect()
            $before = $proc.WorkingSet64
            $err = $null
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $null = Get-OciImage $ref | Expand-OciLayers -MaxLayerSize 64MB -ErrorVariable err -ErrorAction SilentlyContinue
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 30
            $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerTooLarge,*'
            $proc.Refresh()
            ($proc.WorkingSet64 - $before) | Should -BeLessThan 200MB -Because 'the layer is streamed, never held in memory'
            @(Get-ChildItem (Join-Path $cache 'tmp') -Recurse -File -Force -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
            @(Get-OciCache -Verify | Where-Object { -not $_.Valid }) | Should -BeNullOrEmpty
            @(Get-ChildItem (Join-Path $cache 'blobs/sha256') -File -ErrorAction SilentlyContinue | Where-Object Length -GT 32MB) | Should -BeNullOrEmpty -Because 'nothing of the bomb was committed'
        }
        finally { $env:INITRAMFSPS_CACHE = Join-Path $work cache }
    }
}

Describe 'Hostile registry answers' {
    BeforeAll {
        # A registry that answers with JSON of the wrong shape where the client expects strings.
        $script:ServerScript = Join-Path $work 'hostile-registry.py'
        Set-Content -LiteralPath $ServerScript -Value @'
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def send(self, code, body, headers={}):
        b = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        for k, v in headers.items(): self.send_header(k, v)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(b)))
        self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        path = self.path.split('?')[0]
        port = self.server.server_address[1]
        if path == '/v2/': return self.send(200, '{}')
        if path == '/token':
            q = self.path
            if 'tok-num' in q: return self.send(200, '{"token": 5, "expires_in": "soon"}')
            if 'tok-array' in q: return self.send(200, '[1, 2]')
            if 'tok-notjson' in q: return self.send(200, 'not json')
            if 'tok-badutf8' in q: return self.send(200, b'{"token": "ab\xff"}')
            return self.send(200, '{"token": "x"}')
        parts = path.split('/')
        repo = parts[2] if len(parts) > 2 else ''
        if repo.startswith('tok-'):
            if 'Authorization' not in self.headers:
                return self.send(401, '{}', {'WWW-Authenticate': 'Bearer realm="http://127.0.0.1:%d/token",service="s",scope="repository:%s:pull"' % (port, repo)})
            return self.send(404, '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        if repo == 'err-array': return self.send(404, '[1]')
        if repo == 'err-codenum': return self.send(404, '{"errors":[{"code":5}]}')
        if repo == 'err-badutf8': return self.send(404, b'{"errors":[{"code":"\xff"}]}')
        if repo == 'tags-num':
            if len(parts) > 3 and parts[3] == 'tags': return self.send(200, '{"name":"tags-num","tags":[1,"v1",null]}')
            return self.send(404, '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        return self.send(404, '{}')
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
with open(sys.argv[1] + '.tmp', 'w') as f: f.write(str(srv.server_address[1]))
import os; os.rename(sys.argv[1] + '.tmp', sys.argv[1])
srv.serve_forever()
'@
        $portFile = Join-Path $work 'hostile-registry.port'
        $script:Server = Start-Process -FilePath python3 -ArgumentList $ServerScript, $portFile -PassThru -RedirectStandardError (Join-Path $work 'hostile-registry.err')
        $deadline = [DateTime]::UtcNow.AddSeconds(20)
        while (-not (Test-Path $portFile) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
        $script:HostileUrl = "127.0.0.1:$((Get-Content $portFile).Trim())"
    }
    AfterAll { if ($Server -and -not $Server.HasExited) { $Server.Kill() } }

    It '<Case>: <Id>, not an unhandled exception' -ForEach @(
        @{ Case = 'a token that is a number'; Repo = 'tok-num'; Id = 'RegistryAuthUnsupported' }
        @{ Case = 'a token answer that is an array'; Repo = 'tok-array'; Id = 'RegistryAuthUnsupported' }
        @{ Case = 'a token answer that is not JSON'; Repo = 'tok-notjson'; Id = 'RegistryAuthUnsupported' }
        @{ Case = 'a token that is not valid UTF-8'; Repo = 'tok-badutf8'; Id = 'RegistryAuthUnsupported' }
        @{ Case = 'an error body that is an array'; Repo = 'err-array'; Id = '\w+' }
        @{ Case = 'an error code that is a number'; Repo = 'err-codenum'; Id = '\w+' }
        @{ Case = 'an error code that is not valid UTF-8'; Repo = 'err-badutf8'; Id = '\w+' }
        @{ Case = 'a tag list holding numbers'; Repo = 'tags-num'; Id = 'TagNotFound' }
    ) {
        $err = $null
        $sw = [Diagnostics.Stopwatch]::StartNew()
        try { $null = Get-OciImage "$HostileUrl/$($Repo):t" -ErrorVariable err -ErrorAction SilentlyContinue } catch { $err = @($_) }
        $sw.Elapsed.TotalSeconds | Should -BeLessThan 30
        @($err).Count | Should -BeGreaterThan 0
        $err[0].Exception | Should -BeOfType [InitramfsPS.Errors.InitramfsException] -Because "an expected failure, not an unhandled exception: $($err[0].Exception)"
        $err[0].FullyQualifiedErrorId | Should -Match "^($Id),"
    }

    It 'a credential helper that prints <Output>: <Id>, not an unhandled exception' -ForEach @(
        @{ Output = '[1]'; Id = 'CredentialHelperFailed' }
        @{ Output = '{"Username": 5, "Secret": ["x"]}'; Id = '\w+' }
    ) {
        $saved = @{ HOME = $env:HOME; PATH = $env:PATH; DOCKER_CONFIG = $env:DOCKER_CONFIG; REGISTRY_AUTH_FILE = $env:REGISTRY_AUTH_FILE; XDG_RUNTIME_DIR = $env:XDG_RUNTIME_DIR }
        try {
            $home_ = New-TestDirectory -Parent $work -Prefix 'home'
            $bin = Join-Path $home_ 'bin'; $null = New-Item -ItemType Directory -Path $bin, (Join-Path $home_ '.docker')
            Set-Content -LiteralPath (Join-Path $bin 'docker-credential-hostile') -Value "#!/bin/sh`ncat >/dev/null`necho '$Output'`n"
            & chmod +x (Join-Path $bin 'docker-credential-hostile')
            Set-Content -LiteralPath (Join-Path $home_ '.docker/config.json') -Value (@{ credHelpers = @{ $HostileUrl = 'hostile' } } | ConvertTo-Json)
            $env:HOME = $home_; $env:XDG_RUNTIME_DIR = $home_; $env:PATH = "$bin$([IO.Path]::PathSeparator)$env:PATH"
            Remove-Item Env:DOCKER_CONFIG, Env:REGISTRY_AUTH_FILE -ErrorAction SilentlyContinue
            $err = $null
            try { $null = Get-OciImage "$HostileUrl/tok-helper:t" -ErrorVariable err -ErrorAction SilentlyContinue } catch { $err = @($_) }
            $err[0].Exception | Should -BeOfType [InitramfsPS.Errors.InitramfsException] -Because "an expected failure, not an unhandled exception: $($err[0].Exception)"
            $err[0].FullyQualifiedErrorId | Should -Match "^($Id),"
        }
        finally { foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k]) } }
    }
}
