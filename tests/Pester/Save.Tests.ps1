# Save-Initramfs and Find-Initramfs (issue 17): initramfs artifacts pulled back from the real
# docker-registry 2.8 on 127.0.0.1, verified, and found as referrers of their image through the
# referrers tag (docker-registry 2.8 has no referrers API; the API path is in the unit tests,
# tests/InitramfsPS.Core.Tests/Artifacts).
#  - the archive equals the one exported, byte for byte; the kernel is written; the saved pair
#    boots under QEMU;
#  - a second save of an artifact that shares parts with the first downloads only the new parts
#    (the report and the registry's own log);
#  - a pinned reference whose manifest was changed in the registry's storage, and a part blob
#    corrupted there, fail with clear ids and leave no file;
#  - Get-OciImage on an artifact names Save-Initramfs; an image given to Save-Initramfs is refused;
#  - refused credentials, -WhatIf, an existing file, Ctrl+C; a hostile registry (tests/tools/rogue-registry.py):
#    endless and huge answers, a hang, an echoed password, an image where an artifact is expected.
# The artifacts are pushed by Publish-TestArtifact below, a small client of the distribution API
# (blob POST+PUT, manifest PUT, the referrers tag) written from Artifacts/ArtifactFormat.cs's
# contract, so that these tests do not depend on Publish-Initramfs.
# Needs docker-registry, skopeo, python3, htpasswd, qemu-system-x86_64 and a /boot/vmlinuz-*.

BeforeAll {
    $script:ModulePath = [IO.Path]::GetFullPath(($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1"))
    Import-Module $ModulePath -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    Import-Module $PSScriptRoot/RegistryHelpers.psm1 -Force

    $script:Work = New-TestDirectory -Prefix 'initramfsps-save'
    $script:Servers = [System.Collections.Generic.List[object]]::new()
    $script:SavedEnv = @{}
    foreach ($n in 'INITRAMFSPS_CACHE', 'HOME', 'DOCKER_CONFIG', 'REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR', 'INITRAMFSPS_REGISTRY_ATTEMPTS', 'INITRAMFSPS_FIRST_BYTE_TIMEOUT') { $SavedEnv[$n] = [Environment]::GetEnvironmentVariable($n) }
    # No credentials of the machine's user may reach a test, and docker-registry reads REGISTRY_*
    # variables as its configuration.
    $env:HOME = New-TestDirectory -Parent $Work -Prefix 'home'
    $env:XDG_RUNTIME_DIR = New-TestDirectory -Parent $Work -Prefix 'xdg'
    Remove-Item Env:DOCKER_CONFIG, Env:REGISTRY_AUTH_FILE -ErrorAction SilentlyContinue
    $script:SavedRegistryEnv = @(Get-ChildItem Env: | Where-Object Name -Like 'REGISTRY_*')
    foreach ($v in $SavedRegistryEnv) { Remove-Item -LiteralPath "Env:$($v.Name)" }

    function script:Use-FreshCache { $env:INITRAMFSPS_CACHE = New-TestDirectory -Parent $Work -Prefix 'cache'; $env:INITRAMFSPS_CACHE }
    function script:New-RandomBytes([int] $Length, [int] $Seed) { $b = [byte[]]::new($Length); [Random]::new($Seed).NextBytes($b); , $b }
    function script:Get-FileSha256([string] $Path) { (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant() }
    function script:Get-BytesDigest([byte[]] $Bytes) { 'sha256:' + [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($Bytes)).ToLowerInvariant() }

    # Runs $Command with errors made terminating and returns the ErrorRecord; fails when it succeeds.
    function script:Get-CommandError([scriptblock] $Command) {
        # No local variable here: the script block sees this function's, and a test's $out would be hidden.
        $ErrorActionPreference = 'Stop'
        try { $succeeded = & $Command }
        catch { return $_ }
        throw "Expected an error, but it succeeded: $(@($succeeded) -join ', ')"
    }

    # --- a small client of the distribution API, for pushing artifacts by hand ---
    $script:Http = [System.Net.Http.HttpClient]::new()
    $Http.Timeout = [TimeSpan]::FromSeconds(60)

    function script:Invoke-Distribution([string] $Method, [string] $Url, [byte[]] $Body, [string] $ContentType, [string] $Accept, [string] $Auth) {
        $request = [System.Net.Http.HttpRequestMessage]::new([System.Net.Http.HttpMethod]::new($Method), $Url)
        if ($Auth) { $request.Headers.Authorization = [System.Net.Http.Headers.AuthenticationHeaderValue]::new('Basic', [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($Auth))) }
        if ($Accept) { $request.Headers.Accept.ParseAdd($Accept) }
        if ($null -ne $Body) {
            $request.Content = [System.Net.Http.ByteArrayContent]::new($Body)
            $request.Content.Headers.ContentType = [System.Net.Http.Headers.MediaTypeHeaderValue]::new($(if ($ContentType) { $ContentType } else { 'application/octet-stream' }))
        }
        $response = $Http.SendAsync($request).GetAwaiter().GetResult()
        [pscustomobject]@{
            Status   = [int]$response.StatusCode
            Location = if ($response.Headers.Location) { $response.Headers.Location.ToString() } else { $null }
            Bytes    = $response.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult()
        }
    }

    # POST then a monolithic PUT ?digest= (distribution spec, "Pushing a blob monolithically").
    function script:Send-TestBlob([string] $Registry, [string] $Repository, [byte[]] $Bytes, [string] $Auth) {
        $digest = Get-BytesDigest $Bytes
        $open = Invoke-Distribution POST "http://$Registry/v2/$Repository/blobs/uploads/" -Auth $Auth
        if ($open.Status -ne 202) { throw "POST of an upload answered $($open.Status): $([Text.Encoding]::UTF8.GetString($open.Bytes))" }
        $location = if ($open.Location -match '^https?://') { $open.Location } else { "http://$Registry$($open.Location)" }
        $put = Invoke-Distribution PUT ($location + $(if ($location.Contains('?')) { '&' } else { '?' }) + "digest=$digest") -Body $Bytes -Auth $Auth
        if ($put.Status -ne 201) { throw "PUT of blob $digest answered $($put.Status): $([Text.Encoding]::UTF8.GetString($put.Bytes))" }
        [ordered]@{ digest = $digest; size = $Bytes.Length }
    }

    function script:ConvertTo-JsonBytes($Object) { , [Text.Encoding]::UTF8.GetBytes(($Object | ConvertTo-Json -Depth 10 -Compress)) }

    <#
    Pushes an archive as an initramfs artifact as ArtifactFormat.cs says: one layer per zstd frame
    (the parts), the kernel last, the config, the manifest under -Tag, and, with -Subject (the
    image's manifest descriptor), the subject field and an entry in the referrers tag <alg>-<hex>.
    #>
    function script:Publish-TestArtifact {
        param(
            [string] $Registry, [string] $Repository, [string] $Tag, [string] $Archive, $Report,
            [string] $Kernel, $Subject, [string] $Auth, [string] $Created = '2026-12-01T10:00:00Z'
        )
        $bytes = [IO.File]::ReadAllBytes($Archive)
        $parts = @(Get-ZstdFrame $bytes)
        (($parts | Measure-Object Length -Sum).Sum) | Should -Be $bytes.Length -Because 'the archive is whole zstd frames'
        $layers = foreach ($p in $parts) {
            $d = Send-TestBlob $Registry $Repository ([byte[]]$bytes[$p.Offset..($p.Offset + $p.Length - 1)]) $Auth
            [ordered]@{ mediaType = 'application/vnd.initramfsps.initramfs.part.v1.cpio+zstd'; digest = $d.digest; size = $d.size }
        }
        if ($Kernel) {
            $d = Send-TestBlob $Registry $Repository ([IO.File]::ReadAllBytes($Kernel)) $Auth
            $layers = @($layers) + [ordered]@{ mediaType = 'application/vnd.initramfsps.kernel.v1'; digest = $d.digest; size = $d.size; annotations = @{ 'org.opencontainers.image.title' = (Split-Path -Leaf $Kernel) } }
        }
        $config = [ordered]@{
            os = 'linux'; architecture = 'amd64'; variant = $null; compression = 'zstd'; kernelCommandLine = 'console=ttyS0'
            entryCount = $Report.EntryCount; uncompressedSize = $Report.UncompressedSize; archiveSize = $bytes.Length
            archiveDigest = "sha256:$($Report.Sha256)"; minimumMemory = $Report.MinimumMemory; moduleVersion = '0.1.0'
            someFutureField = 'readers ignore names they do not know'
        }
        $configDescriptor = Send-TestBlob $Registry $Repository (ConvertTo-JsonBytes $config) $Auth
        $manifest = [ordered]@{
            schemaVersion = 2
            mediaType     = 'application/vnd.oci.image.manifest.v1+json'
            artifactType  = 'application/vnd.initramfsps.initramfs.v1'
            config        = [ordered]@{ mediaType = 'application/vnd.initramfsps.initramfs.config.v1+json'; digest = $configDescriptor.digest; size = $configDescriptor.size }
            layers        = @($layers)
            annotations   = [ordered]@{ 'org.opencontainers.image.created' = $Created; 'org.opencontainers.image.base.name' = 'test/busybox' }
        }
        if ($Subject) { $manifest.subject = $Subject }
        $manifestBytes = ConvertTo-JsonBytes $manifest
        $digest = Get-BytesDigest $manifestBytes
        $put = Invoke-Distribution PUT "http://$Registry/v2/$Repository/manifests/$Tag" -Body $manifestBytes -ContentType 'application/vnd.oci.image.manifest.v1+json' -Auth $Auth
        if ($put.Status -ne 201) { throw "PUT of the manifest answered $($put.Status): $([Text.Encoding]::UTF8.GetString($put.Bytes))" }
        if ($Subject) {
            $fallback = $Subject.digest -replace ':', '-'
            $indexType = 'application/vnd.oci.image.index.v1+json'
            $old = Invoke-Distribution GET "http://$Registry/v2/$Repository/manifests/$fallback" -Accept $indexType -Auth $Auth
            $entries = if ($old.Status -eq 200) { @(([Text.Encoding]::UTF8.GetString($old.Bytes) | ConvertFrom-Json).manifests) } else { @() }
            $entries = @($entries) + [ordered]@{ mediaType = $manifest.mediaType; digest = $digest; size = $manifestBytes.Length; artifactType = $manifest.artifactType; annotations = $manifest.annotations }
            $index = [ordered]@{ schemaVersion = 2; mediaType = $indexType; manifests = @($entries) }
            $put = Invoke-Distribution PUT "http://$Registry/v2/$Repository/manifests/$fallback" -Body (ConvertTo-JsonBytes $index) -ContentType $indexType -Auth $Auth
            if ($put.Status -ne 201) { throw "PUT of the referrers tag answered $($put.Status)." }
        }
        [pscustomobject]@{
            Digest          = $digest
            Reference       = "$Registry/$Repository@$digest"
            TagReference    = "$Registry/$Repository`:$Tag"
            Parts           = @($layers | Where-Object mediaType -Like '*part*' | ForEach-Object { $_.digest })
            PartSizes       = @($layers | Where-Object mediaType -Like '*part*' | ForEach-Object { $_.size })
            KernelDigest    = @($layers | Where-Object mediaType -Like '*kernel*' | ForEach-Object { $_.digest }) | Select-Object -First 1
            ManifestBytes   = $manifestBytes
        }
    }

    # Where docker-registry's filesystem driver keeps a blob's bytes (manifests are blobs too).
    function script:Get-StoredBlobPath($Registry, [string] $Digest) {
        $hex = $Digest -replace '^sha256:', ''
        Join-Path $Registry.DataDir "docker/registry/v2/blobs/sha256/$($hex.Substring(0, 2))/$hex/data"
    }

    # The blob digests docker-registry answered GET for, from its log, past byte $From of it.
    function script:Get-BlobDownload($Registry, [long] $From) {
        $text = [IO.File]::ReadAllText($Registry.LogPath)
        $text = if ($From -lt $text.Length) { $text.Substring([int]$From) } else { '' }
        @($text -split "`n" | Where-Object { $_ -match 'response completed' -and $_ -match 'http\.request\.method=GET' } |
            ForEach-Object { if ($_ -match 'http\.request\.uri="[^"]*/blobs/(sha256:[0-9a-f]{64})"') { $Matches[1] } })
    }
    function script:Get-LogLength($Registry) { [IO.File]::ReadAllText($Registry.LogPath).Length }

    $script:Kernel = Get-ChildItem -Path '/boot' -Filter 'vmlinuz-*' -File |
        Sort-Object { $v = ($_.Name -replace '^vmlinuz-', '') -replace '[^0-9.].*$', ''; try { [version]($v.TrimEnd('.')) } catch { [version]'0.0' } }, Name |
        Select-Object -Last 1 -ExpandProperty FullName
    if (-not $Kernel) { throw 'No /boot/vmlinuz-* kernel found.' }

    # --- the image and two archives of it that share parts ---
    $script:Guid = [guid]::NewGuid().ToString('N')
    $script:Marker = "INITRAMFSPS-SAVE-$Guid-42"
    $init = "#!/bin/sh`necho `"INITRAMFSPS-SAVE-$Guid-`$((6*7))`"`npoweroff -f`n"
    # 12 MB of incompressible files: about four 4 MiB parts, so that a file added changes few of them.
    $data = New-TestTar -Entry @(1..6 | ForEach-Object { @{ Name = "data/blob-$_.bin"; Data = (New-RandomBytes 2MB $_) } })
    $layout = New-TestOciLayout -Path (Join-Path $Work 'layout') -Tag app -Layer @((New-BusyboxLayer -Init $init), $data)
    $script:Registry = Start-TestRegistry; $Servers.Add($Registry)
    $script:Image = Push-TestImage -Layout $layout.Path -Tag app -Registry $Registry.Url -Repository team/app -DestinationTag '1.0'
    $script:Subject = [ordered]@{ mediaType = 'application/vnd.oci.image.manifest.v1+json'; digest = $Image.Digest; size = (Invoke-Distribution GET "http://$($Registry.Url)/v2/team/app/manifests/$($Image.Digest)" -Accept 'application/vnd.oci.image.manifest.v1+json').Bytes.Length }

    $null = Use-FreshCache
    $script:ArchiveA = Join-Path $Work 'a.cpio.zst'
    $script:ReportA = Get-OciImage $Image.Reference | Export-Initramfs $ArchiveA
    $extra = Join-Path $Work 'extra.txt'; Set-Content -LiteralPath $extra -Value "variant $Guid"
    $script:ArchiveB = Join-Path $Work 'b.cpio.zst'
    $script:ReportB = Get-OciImage $Image.Reference | Add-InitramfsFile $extra /etc/variant -Mode 0644 | Export-Initramfs $ArchiveB

    $script:ArtifactA = Publish-TestArtifact -Registry $Registry.Url -Repository team/app -Tag 'app-a' -Archive $ArchiveA -Report $ReportA -Kernel $Kernel -Subject $Subject -Created '2026-12-01T10:00:00Z'
    $script:ArtifactB = Publish-TestArtifact -Registry $Registry.Url -Repository team/app -Tag 'app-b' -Archive $ArchiveB -Report $ReportB -Subject $Subject -Created '2026-12-02T10:00:00Z'
}

AfterAll {
    for ($i = $Servers.Count - 1; $i -ge 0; $i--) { Stop-TestServer $Servers[$i] }
    if ($Http) { $Http.Dispose() }
    foreach ($n in $SavedEnv.Keys) { [Environment]::SetEnvironmentVariable($n, $SavedEnv[$n]) }
    foreach ($v in $SavedRegistryEnv) { [Environment]::SetEnvironmentVariable($v.Name, $v.Value) }
    if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
}

Describe 'Save-Initramfs from a real registry' {
    It 'the two test archives share parts, so the reuse tests mean something' {
        $ArtifactA.Parts.Count | Should -BeGreaterThan 2
        $shared = @($ArtifactB.Parts | Where-Object { $_ -in $ArtifactA.Parts })
        $shared.Count | Should -BeGreaterThan 0
        $shared.Count | Should -BeLessThan $ArtifactB.Parts.Count
    }

    It 'writes the archive byte for byte as it was exported, and the kernel, and reports both' {
        $null = Use-FreshCache
        $out = Join-Path $Work 'saved-a.cpio.zst'
        $kernelOut = Join-Path $Work 'saved-vmlinuz'
        $report = Save-Initramfs -Reference "$($Registry.Url)/team/app:app-a" -Path $out -KernelPath $kernelOut

        Get-FileSha256 $out | Should -Be (Get-FileSha256 $ArchiveA)
        Get-FileSha256 $kernelOut | Should -Be (Get-FileSha256 $Kernel)
        $report.Sha256 | Should -Be $ReportA.Sha256
        $report.Path | Should -Be $out
        $report.KernelPath | Should -Be $kernelOut
        $report.Reference | Should -Be $ArtifactA.Reference -Because 'the report pins what was saved'
        $report.ManifestDigest.ToString() | Should -Be $ArtifactA.Digest
        $report.Archive | Should -BeOfType ([InitramfsPS.Export.ExportReport])
        $report.Archive.EntryCount | Should -Be $ReportA.EntryCount
        $report.Archive.UncompressedSize | Should -Be $ReportA.UncompressedSize
        $report.Archive.CompressedSize | Should -Be (Get-Item $out).Length
        $report.Archive.MinimumMemory | Should -Be $ReportA.MinimumMemory
        "$($report.Compression)" | Should -Be 'Zstd'
        $report.KernelCommandLine | Should -Be 'console=ttyS0'
        $report.Platform | Should -Be 'linux/amd64'
        $report.LayersDownloaded | Should -Be ($ArtifactA.Parts.Count + 1)
        $report.LayersReused | Should -Be 0
        $report.BytesDownloaded | Should -Be ((Get-Item $out).Length + (Get-Item $Kernel).Length)
        "$report" | Should -Match ([regex]::Escape($ArtifactA.Reference))
        @(Get-ChildItem $Work -Force -Filter '*.partial') | Should -BeNullOrEmpty

        # The cache keeps the parts as the artifact's, as a pull keeps an image's layers.
        $entries = @(Get-OciCache | Where-Object { "$($_.Digest)" -in $ArtifactA.Parts })
        $entries.Count | Should -Be $ArtifactA.Parts.Count
        foreach ($e in $entries) { ($e.UsedBy -join ', ') | Should -Match ([regex]::Escape('team/app:app-a')) -Because ($e | Out-String) }
        $null = Clear-OciCache -Unused -Confirm:$false
        @(Get-OciCache | Where-Object { "$($_.Digest)" -in $ArtifactA.Parts }).Count | Should -Be $ArtifactA.Parts.Count -Because 'Clear-OciCache -Unused keeps what a saved tag uses'
    }

    It 'pipes into Test-Initramfs as an export report does' {
        $out = Join-Path $Work 'saved-test.cpio.zst'
        $findings = @(Save-Initramfs "$($Registry.Url)/team/app:app-a" $out | Test-Initramfs -Memory 512MB)
        @($findings | Where-Object Severity -EQ 'Error') | Should -BeNullOrEmpty
        # The memory check names the archive it read: the saved file.
        ($findings | Where-Object Id -EQ 'MemoryMinimum').Path | Should -Be $out
    }

    It 'a second save of an artifact sharing parts downloads only its new parts (report and registry log)' {
        $null = Use-FreshCache
        $null = Save-Initramfs $ArtifactA.Reference (Join-Path $Work 'first.cpio.zst')
        $from = Get-LogLength $Registry
        $report = Save-Initramfs $ArtifactB.Reference (Join-Path $Work 'second.cpio.zst')

        Get-FileSha256 (Join-Path $Work 'second.cpio.zst') | Should -Be (Get-FileSha256 $ArchiveB)
        $new = @($ArtifactB.Parts | Where-Object { $_ -notin $ArtifactA.Parts } | Select-Object -Unique)
        $shared = @($ArtifactB.Parts | Where-Object { $_ -in $ArtifactA.Parts } | Select-Object -Unique)
        $report.LayersReused | Should -Be $shared.Count
        $report.LayersDownloaded | Should -Be $new.Count
        $newBytes = 0; for ($i = 0; $i -lt $ArtifactB.Parts.Count; $i++) { if ($ArtifactB.Parts[$i] -in $new) { $newBytes += $ArtifactB.PartSizes[$i] } }
        $report.BytesDownloaded | Should -Be $newBytes
        # docker-registry logs the request once it has answered: give it a moment.
        Start-Sleep -Milliseconds 500
        $downloaded = @(Get-BlobDownload $Registry $from)
        $downloaded | Where-Object { $_ -in $shared } | Should -BeNullOrEmpty -Because 'a part the cache holds is not downloaded again'
        foreach ($d in $new) { $downloaded | Should -Contain $d }
    }

    It 'refuses a second artifact from the pipeline for one -Path, as Export-Initramfs does' {
        $out = Join-Path $Work 'two.cpio.zst'
        $results = @(Find-Initramfs $Image.Reference | Save-Initramfs -Path $out -Force -ErrorAction SilentlyContinue -ErrorVariable failures)
        $results.Count | Should -Be 1
        @($failures).Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'MultipleInputs,*'
        Get-FileSha256 $out | Should -Be $results[0].Sha256
    }

    It 'replaces an existing file only with -Force' {
        $out = Join-Path $Work 'exists.cpio.zst'
        Set-Content -LiteralPath $out -Value 'old'
        $e = Get-CommandError { Save-Initramfs $ArtifactB.Reference $out }
        $e.FullyQualifiedErrorId | Should -BeLike 'OutputExists,*'
        Get-Content -Raw -LiteralPath $out | Should -Be "old$([Environment]::NewLine)"
        $null = Save-Initramfs $ArtifactB.Reference $out -Force
        Get-FileSha256 $out | Should -Be (Get-FileSha256 $ArchiveB)
    }

    It '-WhatIf writes nothing and downloads nothing' {
        $cache = Use-FreshCache
        $out = Join-Path $Work 'whatif.cpio.zst'
        $from = Get-LogLength $Registry
        $result = Save-Initramfs $ArtifactA.Reference $out -KernelPath (Join-Path $Work 'whatif-vmlinuz') -WhatIf
        $result | Should -BeNullOrEmpty
        Test-Path -LiteralPath $out | Should -BeFalse
        Test-Path -LiteralPath (Join-Path $Work 'whatif-vmlinuz') | Should -BeFalse
        Start-Sleep -Milliseconds 300
        @(Get-BlobDownload $Registry $from) | Should -BeNullOrEmpty
        @(Get-ChildItem (Join-Path $cache 'blobs') -Recurse -File -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
    }

    It '-KernelPath on an artifact without a kernel is ArtifactHasNoKernel, and nothing is written' {
        $out = Join-Path $Work 'nokernel.cpio.zst'
        $e = Get-CommandError { Save-Initramfs $ArtifactB.Reference $out -KernelPath (Join-Path $Work 'nokernel-vmlinuz') }
        $e.FullyQualifiedErrorId | Should -BeLike 'ArtifactHasNoKernel,*'
        Test-Path -LiteralPath $out | Should -BeFalse
    }
}

Describe 'The archive Save-Initramfs pulls back boots' -Tag Boot {
    It 'boots the saved archive with the saved kernel under QEMU, prints the marker and powers off' {
        $null = Use-FreshCache
        $out = Join-Path $Work 'boot.cpio.zst'
        $kernelOut = Join-Path $Work 'boot-vmlinuz'
        $null = Save-Initramfs $ArtifactA.Reference $out -KernelPath $kernelOut
        $boot = Invoke-QemuBoot $out -Kernel $kernelOut -TimeoutSeconds 120
        $why = "exit $($boot.ExitCode), timed out $($boot.TimedOut)`n$($boot.Output)`n$($boot.StdErr)"
        $boot.TimedOut | Should -BeFalse -Because $why
        $boot.ExitCode | Should -Be 0 -Because $why
        $boot.Output | Should -Match ([regex]::Escape($Marker)) -Because $why
        $boot.Output | Should -Match 'reboot: Power down' -Because $why
    }

    It 'boots through Start-InitramfsVM from the save''s report, with the kernel saved beside it' {
        $out = Join-Path $Work 'boot-vm.cpio.zst'
        $kernelOut = Join-Path $Work 'boot-vm-vmlinuz'
        $saved = Save-Initramfs $ArtifactA.Reference $out -KernelPath $kernelOut
        $result = $saved | Start-InitramfsVM -Machine q35 -Until ([regex]::Escape($Marker)) -Timeout 120
        $result.Matched | Should -BeTrue -Because $result.Console
        $result.Kernel | Should -Be $kernelOut -Because 'the saved kernel boots the saved archive'
        $result.Archive | Should -Be $out
    }
}

Describe 'Save-Initramfs refuses what it cannot verify, and leaves no file' {
    It 'a pinned reference whose manifest was changed in the registry is DigestMismatch' {
        $null = Use-FreshCache
        $altered = Publish-TestArtifact -Registry $Registry.Url -Repository team/altered -Tag 'v1' -Archive $ArchiveA -Report $ReportA
        $stored = Get-StoredBlobPath $Registry $altered.Digest
        $stored | Should -Exist
        # The same JSON with one more space: still a valid manifest, no longer the pinned bytes.
        $text = [Text.Encoding]::UTF8.GetString($altered.ManifestBytes)
        [IO.File]::WriteAllText($stored, $text.Replace('"schemaVersion":2', '"schemaVersion": 2'))
        $out = Join-Path $Work 'altered.cpio.zst'

        try { $e = Get-CommandError { Save-Initramfs $altered.Reference $out } }
        finally { [IO.File]::WriteAllBytes($stored, $altered.ManifestBytes) }
        $e.FullyQualifiedErrorId | Should -BeLike 'DigestMismatch,*'
        $e.Exception.Message | Should -Match ([regex]::Escape($altered.Digest))
        Test-Path -LiteralPath $out | Should -BeFalse
        @(Get-ChildItem $Work -Force -Filter '.altered*') | Should -BeNullOrEmpty
    }

    It 'a part corrupted in the registry''s storage is DigestMismatch naming it, and leaves no file' {
        # The registry stores a blob once for every repository: the part corrupted is one no other test uses.
        $unique = Join-Path $Work 'unique.bin'; [IO.File]::WriteAllBytes($unique, (New-RandomBytes 1MB 99))
        $archive = Join-Path $Work 'c.cpio.zst'
        $report = Get-OciImage $Image.Reference | Add-InitramfsFile $unique /data/unique.bin -Mode 0644 | Export-Initramfs $archive
        $corrupt = Publish-TestArtifact -Registry $Registry.Url -Repository team/corrupt -Tag 'v1' -Archive $archive -Report $report
        $part = @($corrupt.Parts | Where-Object { $_ -notin $ArtifactA.Parts -and $_ -notin $ArtifactB.Parts })[0]
        $part | Should -Not -BeNullOrEmpty
        # After the export: its part cache holds the parts as cache blobs, which a save would reuse.
        $cache = Use-FreshCache
        $stored = Get-StoredBlobPath $Registry $part
        $original = [IO.File]::ReadAllBytes($stored)
        $bytes = [byte[]]$original.Clone()
        $bytes[100] = $bytes[100] -bxor 0xFF
        [IO.File]::WriteAllBytes($stored, $bytes)
        $out = Join-Path $Work 'corrupt.cpio.zst'

        try { $e = Get-CommandError { Save-Initramfs $corrupt.Reference $out } }
        finally { [IO.File]::WriteAllBytes($stored, $original) }
        $e.FullyQualifiedErrorId | Should -BeLike 'DigestMismatch,*'
        $e.Exception.Message | Should -Match ([regex]::Escape($part))
        Test-Path -LiteralPath $out | Should -BeFalse
        @(Get-ChildItem $Work -Force -Filter '.corrupt*') | Should -BeNullOrEmpty -Because 'no temporary file is left either'
        Test-Path -LiteralPath (Join-Path $cache "blobs/sha256/$($part -replace '^sha256:', '')") | Should -BeFalse -Because 'nothing unverified enters the cache'
    }

    It 'an image given to Save-Initramfs is NotInitramfsArtifact, naming Get-OciImage and Find-Initramfs' {
        $out = Join-Path $Work 'image.cpio.zst'
        $e = Get-CommandError { Save-Initramfs $Image.Reference $out }
        $e.FullyQualifiedErrorId | Should -BeLike 'NotInitramfsArtifact,*'
        $e.Exception.Message | Should -Match 'Get-OciImage'
        $e.Exception.Message | Should -Match 'Find-Initramfs'
        Test-Path -LiteralPath $out | Should -BeFalse
    }

    It 'refused credentials are RegistryCredentialsRefused, with the password in no stream' {
        $password = "pw-$([guid]::NewGuid().ToString('N'))"
        $htpasswd = New-Htpasswd -Path (Join-Path $Work 'htpasswd') -User 'robot' -Password $password
        $private = Start-TestRegistry -Auth htpasswd -HtpasswdFile $htpasswd; $Servers.Add($private)
        $artifact = Publish-TestArtifact -Registry $private.Url -Repository team/private -Tag 'v1' -Archive $ArchiveB -Report $ReportB -Auth "robot:$password"
        $wrong = [pscredential]::new('robot', (ConvertTo-SecureString 'not-the-password' -AsPlainText -Force))
        $out = Join-Path $Work 'private.cpio.zst'

        $e = Get-CommandError { Save-Initramfs $artifact.Reference $out -Credential $wrong -Verbose 4>&1 }
        $e.FullyQualifiedErrorId | Should -BeLike 'RegistryCredentialsRefused,*'
        "$($e.Exception)" | Should -Not -Match 'not-the-password'
        Test-Path -LiteralPath $out | Should -BeFalse

        $right = [pscredential]::new('robot', (ConvertTo-SecureString $password -AsPlainText -Force))
        $all = Save-Initramfs $artifact.Reference $out -Credential $right -Verbose 4>&1
        Get-FileSha256 $out | Should -Be (Get-FileSha256 $ArchiveB)
        ($all | Out-String) | Should -Not -Match ([regex]::Escape($password))
    }

    It 'Ctrl+C in the middle of the downloads stops promptly and leaves no file' {
        $cache = Use-FreshCache
        $slow = Start-FaultProxy -Upstream $Registry.Url -Fault slow -SlowRate 1MB; $Servers.Add($slow)
        $out = Join-Path $Work 'stopped.cpio.zst'
        $ps = [PowerShell]::Create()
        try {
            $null = $ps.AddCommand('Import-Module').AddArgument($ModulePath).AddStatement()
            $null = $ps.AddScript("`$env:INITRAMFSPS_CACHE = '$cache'").AddStatement()
            $null = $ps.AddCommand('Save-Initramfs').AddParameter('Reference', "$($slow.Url)/team/app@$($ArtifactA.Digest)").AddParameter('Path', $out)
            $async = $ps.BeginInvoke()
            $deadline = [DateTime]::UtcNow.AddSeconds(60)
            while (@(Get-ChildItem (Join-Path $cache 'tmp') -Filter '*.partial' -Force -ErrorAction SilentlyContinue).Count -eq 0 -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
            Start-Sleep -Milliseconds 300
            $ps.InvocationStateInfo.State | Should -Be 'Running' -Because 'the stop must land in the middle of the downloads'
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            try { $null = $ps.EndInvoke($async) } catch { }
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 10
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        }
        finally { $ps.Dispose() }
        Test-Path -LiteralPath $out | Should -BeFalse
        @(Get-ChildItem $Work -Force -Filter '.stopped*') | Should -BeNullOrEmpty
        @(Get-ChildItem (Join-Path $cache 'tmp') -Force -File -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty -Because 'a stopped download deletes its temporary blob'
    }
}

Describe 'Find-Initramfs through the referrers tag' {
    It 'lists both artifacts of the image, newest first, pinned by digest' {
        $found = @(Find-Initramfs -Image $Image.Reference)
        $found.Count | Should -Be 2
        $found[0].Reference | Should -Be $ArtifactB.Reference
        $found[1].Reference | Should -Be $ArtifactA.Reference
        $found[1].Digest.ToString() | Should -Be $ArtifactA.Digest
        $found[1].Subject.ToString() | Should -Be $Image.Digest
        $found[1].HasKernel | Should -BeTrue
        $found[0].HasKernel | Should -BeFalse
        $found[1].Compression | Should -Be 'zstd'
        $found[1].Size | Should -Be (Get-Item $ArchiveA).Length
        $found[1].ArtifactType | Should -Be 'application/vnd.initramfsps.initramfs.v1'
        $found[1].Created | Should -Be ([DateTimeOffset]'2026-12-01T10:00:00Z')
        $found[1].BaseName | Should -Be 'test/busybox'
        "$($found[1])" | Should -Match ([regex]::Escape($ArtifactA.Reference))
    }

    It 'shows an artifact and a save report with whole digests, in 80 and 160 columns' {
        $found = @(Find-Initramfs -Image $Image.Reference)
        $saved = Save-Initramfs $ArtifactA.Reference (Join-Path $Work 'view.cpio.zst') -Force
        foreach ($width in 80, 160) {
            $text = $found | Out-String -Width $width
            foreach ($line in $text -split '\r?\n') { $line.Length | Should -BeLessOrEqual $width -Because $line }
            foreach ($a in $found) { $text | Should -Match ([regex]::Escape($a.Digest.ToString())) }
            $text = $saved | Out-String -Width $width
            foreach ($line in $text -split '\r?\n') { $line.Length | Should -BeLessOrEqual $width -Because $line }
            $text | Should -Match ([regex]::Escape($ArtifactA.Digest))
            $text | Should -Match ([regex]::Escape("sha256:$($ReportA.Sha256)"))
            $text | Should -Not -Match '…'
        }
    }

    It 'pipes into Save-Initramfs by property name' {
        $out = Join-Path $Work 'found.cpio.zst'
        $report = Find-Initramfs $Image.Reference | Where-Object HasKernel | Save-Initramfs -Path $out
        $report.Reference | Should -Be $ArtifactA.Reference
        Get-FileSha256 $out | Should -Be (Get-FileSha256 $ArchiveA)
    }

    It 'an image nothing refers to gives no artifact and no error' {
        $lonely = Push-TestImage -Layout (Join-Path $Work 'layout') -Tag app -Registry $Registry.Url -Repository team/lonely -DestinationTag '1.0'
        $found = @(Find-Initramfs $lonely.Reference -ErrorAction Stop)
        $found | Should -BeNullOrEmpty
    }

    It 'leaves out, with a warning, a listed referrer whose manifest is not an initramfs artifact' {
        # An entry that claims our artifactType but is the image itself.
        $fallback = "http://$($Registry.Url)/v2/team/app/manifests/$($Image.Digest -replace ':', '-')"
        $indexType = 'application/vnd.oci.image.index.v1+json'
        $old = Invoke-Distribution GET $fallback -Accept $indexType
        $index = [Text.Encoding]::UTF8.GetString($old.Bytes) | ConvertFrom-Json
        $index.manifests = @($index.manifests) + [pscustomobject]@{ mediaType = 'application/vnd.oci.image.manifest.v1+json'; digest = $Image.Digest; size = $Subject.size; artifactType = 'application/vnd.initramfsps.initramfs.v1' } +
            [pscustomobject]@{ mediaType = 'application/vnd.oci.image.manifest.v1+json'; digest = $Image.Digest; size = $Subject.size; artifactType = 'application/vnd.example.signature' }
        try {
            $null = Invoke-Distribution PUT $fallback -Body (ConvertTo-JsonBytes $index) -ContentType $indexType
            $found = @(Find-Initramfs $Image.Reference -WarningVariable warnings -WarningAction SilentlyContinue)
            $found.Count | Should -Be 2
            @($warnings).Count | Should -Be 1 -Because 'the entry of another artifactType is filtered out quietly; ours that is not one is named'
            "$($warnings[0])" | Should -Match ([regex]::Escape($Image.Digest))
        }
        finally {
            $null = Invoke-Distribution PUT $fallback -Body $old.Bytes -ContentType $indexType
        }
    }
}

Describe 'Get-OciImage on an initramfs artifact' {
    It 'is ArtifactIsInitramfs, and the message names Save-Initramfs' {
        $e = Get-CommandError { Get-OciImage $ArtifactA.Reference }
        $e.FullyQualifiedErrorId | Should -BeLike 'ArtifactIsInitramfs,*'
        $e.Exception.Message | Should -Match 'Save-Initramfs'
        $e = Get-CommandError { Get-OciImage "$($Registry.Url)/team/app:app-b" | Expand-OciLayers }
        $e.FullyQualifiedErrorId | Should -BeLike 'ArtifactIsInitramfs,*'
    }

    It 'is ArtifactIsInitramfs from an OCI layout too: the check is where every source''s manifests are parsed' {
        $layout = Join-Path $Work 'artifact-layout'
        $blobs = New-Item -ItemType Directory -Force (Join-Path $layout 'blobs/sha256')
        [IO.File]::WriteAllBytes((Join-Path $blobs ($ArtifactB.Digest -replace '^sha256:', '')), $ArtifactB.ManifestBytes)
        Set-Content -LiteralPath (Join-Path $layout 'oci-layout') -Value '{"imageLayoutVersion":"1.0.0"}'
        $index = [ordered]@{ schemaVersion = 2; manifests = @([ordered]@{
                    mediaType = 'application/vnd.oci.image.manifest.v1+json'; digest = $ArtifactB.Digest; size = $ArtifactB.ManifestBytes.Length
                    annotations = @{ 'org.opencontainers.image.ref.name' = 'art' } }) }
        Set-Content -LiteralPath (Join-Path $layout 'index.json') -Value ($index | ConvertTo-Json -Depth 5 -Compress)

        $e = Get-CommandError { Get-OciImage "oci:$($layout):art" }
        $e.FullyQualifiedErrorId | Should -BeLike 'ArtifactIsInitramfs,*'
        $e.Exception.Message | Should -Match 'Save-Initramfs'
    }
}

Describe 'A hostile registry' {
    BeforeAll {
        $script:RoguePassword = "rogue-$([guid]::NewGuid().ToString('N'))"
        $script:Rogue = Start-RogueRegistry -User rogue -Password $RoguePassword -EndlessCap 64MB; $Servers.Add($Rogue)
        $script:RogueCredential = New-TestCredential rogue $RoguePassword
        $env:INITRAMFSPS_FIRST_BYTE_TIMEOUT = '2'
        $env:INITRAMFSPS_REGISTRY_ATTEMPTS = '2'
    }
    AfterAll {
        $env:INITRAMFSPS_FIRST_BYTE_TIMEOUT = $SavedEnv['INITRAMFSPS_FIRST_BYTE_TIMEOUT']
        $env:INITRAMFSPS_REGISTRY_ATTEMPTS = $SavedEnv['INITRAMFSPS_REGISTRY_ATTEMPTS']
    }

    It '<Command> against <Repo>: <Id>, promptly, with no file and no secret' -ForEach @(
        @{ Command = 'Save-Initramfs'; Repo = 'endless-manifest'; Id = 'RegistryResponseTooLarge' }
        @{ Command = 'Find-Initramfs'; Repo = 'endless-manifest'; Id = 'RegistryResponseTooLarge' }
        @{ Command = 'Save-Initramfs'; Repo = 'huge-length'; Id = 'RegistryResponseTooLarge' }
        @{ Command = 'Save-Initramfs'; Repo = 'hang'; Id = 'RegistryUnavailable' }
        @{ Command = 'Save-Initramfs'; Repo = 'echo-body'; Id = 'RegistryRequestFailed' }
        @{ Command = 'Find-Initramfs'; Repo = 'echo-body'; Id = 'RegistryRequestFailed' }
        @{ Command = 'Save-Initramfs'; Repo = 'ok'; Id = 'NotInitramfsArtifact' }
    ) {
        $null = Use-FreshCache
        $out = Join-Path $Work "rogue-$Repo.cpio.zst"
        $reference = "$($Rogue.Url)/rogue/$($Repo):1.0"
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $records = @(if ($Command -eq 'Save-Initramfs') {
                Save-Initramfs $reference $out -Credential $RogueCredential -Verbose -ErrorAction Continue *>&1
            }
            else {
                Find-Initramfs $reference -Credential $RogueCredential -Verbose -ErrorAction Continue *>&1
            })
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 30
        $errors = @($records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $errors.Count | Should -Be 1
        $errors[0].FullyQualifiedErrorId | Should -BeLike "$Id,*"
        Test-Path -LiteralPath $out | Should -BeFalse
        $text = ($records | ForEach-Object { "$_"; if ($_ -is [System.Management.Automation.ErrorRecord]) { "$($_.Exception)" } }) -join "`n"
        $basic = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes("rogue:$RoguePassword"))
        $text | Should -Not -Match ([regex]::Escape($RoguePassword))
        $text | Should -Not -Match ([regex]::Escape($basic))
    }
}
