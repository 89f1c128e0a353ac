@datascientist @slow @docker
Feature: The data scientist collects and labels data, trains models for devices and stores them to assign
  As a data scientist, I want to collect data and label it, train models with the settings I
  choose and store each with where it came from, so that the devices get models I can trust.
  Everything runs offline: scikit-learn's bundled digits are the images, the service trains in
  TensorFlow, the boards are emulated and the x86 device runs in its container.

  @qemu
  Scenario: labelled images become an int8 model that fits the boards and runs on one of them
    Given the service is running with a fresh database
    When I upload scikit-learn's handwritten digits as one archive with three bad files in it
    Then each bad file is refused with its reason and every other image is kept
    When I train a model on "digits" with 12 epochs, batch size 32, learning rate 0.005 and seed 3
    Then the training reports every epoch's loss and accuracy until it succeeds
    And the int8 model's accuracy on the test split is within 2 points of the float model's
    And the model version keeps its lineage: dataset version 1, the settings and the seed
    And dataset version 1 no longer changes: relabelling a sample makes version 2
    When I profile the model across the boards
    Then the profile says which boards it fits, with instructions and latency measured on their emulators
    When I deploy the model to an emulated "lm3s6965evb" and run the test split on it
    Then the device's accuracy equals the int8 model's and its outputs are the interpreter's bytes

  @x86 @lwm2m
  Scenario: inputs collected from a running device are labelled and the retrained version 2 is better
    Given the service is running with a fresh database
    And a digits dataset with 150 labelled images and a model trained on it
    And the model runs on x86 device "ds-cam", managed by the service
    When I collect the inputs of the next 450 inferences of "ds-cam" into the dataset
    And the device runs inferences on 450 images it has not seen
    Then the dataset has 450 unlabelled samples from "ds-cam"
    When I label them and train again from the first model
    Then version 2 of the model is more accurate than version 1 on the new test split
    And the lineage of version 2 names dataset version 2 and version 1 as its parent
